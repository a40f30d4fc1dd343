// The web client: sign in with a one-time code, chat with streamed replies, upgrade to Pro.
// Plain ES modules, no framework. Model text reaches the page only through markdown.js
// (DOM nodes, text as text) or textContent; nothing here assigns innerHTML.

import { ApiError, api, session } from "./api.js";
import { openDeleteAccount, wireDeleteAccount } from "./account-dialog.js";
import { branchNav, editForm } from "./branches.js";
import { renderMarkdown, safeUrl } from "./markdown.js";
import { clearSearch, initSearch, revealFound } from "./search.js";
import { roomAction, wireShareDialog } from "./share-dialog.js";
import { followReply } from "./sse.js";

const $ = (id) => document.getElementById(id);
const PENDING = new Set(["queued", "generating"]); // "generating": this client, while tokens stream in
const DEFAULT_ROOM_NAME = "New chat";
const TITLE_POLL_DELAYS_MS = [800, 1200, 2000, 3000, 4000, 6000];
const PRO_WAIT_MS = 60_000;

const state = {
  user: null,
  rooms: [],
  nextCursor: null,
  roomId: null,
  messages: [], // what the open room shows, oldest first (superseded replies left out)
  hasMore: false,
  usage: null,
  models: null, // GET /models: the tier's own model and what a chat may choose
  active: null, // the reply being streamed: {roomId, replyId, controller, stopping}
  sending: false,
  loginNumber: null,
};
let loaded = null; // the first load of the user, rooms and usage after sign-in
let openSeq = 0; // the latest openRoom call: older answers are dropped
const titlePolls = new Set();
const rendering = new Set();
let menuRoom = null;
let menuButton = null;

// --- small helpers ----------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let toastTimer = 0;
function toast(message) {
  const box = $("toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, 5000);
}

function showError(error) {
  if (error instanceof ApiError && error.status === 401) return; // back at sign-in already
  toast(error.message || "Something went wrong.");
}

function fieldMessage(error) {
  return error.body?.errors?.[0]?.message || error.message;
}

function showView(name) {
  $("boot").hidden = true;
  for (const view of ["login", "app", "status"]) $(`${view}-view`).hidden = view !== name;
}

/** "at 5:30 AM (in 3 h 10 min)" or "tomorrow at 12:00 AM (in 9 h)". */
function whenPhrase(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "soon";
  const now = new Date();
  const time = at.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  const startOfDay = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((startOfDay(at) - startOfDay(now)) / 86_400_000);
  const day = days === 0 ? "" : days === 1 ? "tomorrow " : `${at.toLocaleDateString()} `;
  const minutes = Math.max(1, Math.round((at - now) / 60_000));
  const hours = Math.floor(minutes / 60);
  const left = hours ? `${hours} h${minutes % 60 ? ` ${minutes % 60} min` : ""}` : `${minutes} min`;
  return `${day}at ${time} (in ${left})`;
}

// --- routing ----------------------------------------------------------------------------

function navigate(path) {
  if (location.pathname + location.search !== path) history.pushState(null, "", path);
  route();
}

function route() {
  closeMenu();
  if (!session.token) {
    showLogin();
    return;
  }
  const path = location.pathname;
  if (path === "/success") {
    showSuccess();
    return;
  }
  if (path === "/cancel") {
    showCancelled();
    return;
  }
  const match = /^\/c\/([^/]+)$/.exec(path);
  if (!match && path !== "/") history.replaceState(null, "", "/");
  showApp(match ? decodeURIComponent(match[1]) : null);
}

async function loadAccount() {
  loaded ??= Promise.all([loadMe(), loadRooms(), refreshUsage()]).catch((error) => {
    loaded = null;
    throw error;
  });
  return loaded;
}

async function showApp(roomId) {
  showView("app");
  openRoom(roomId);
  try {
    await loadAccount();
  } catch (error) {
    showError(error);
  }
}

// --- sign in ----------------------------------------------------------------------------

function showLogin(message = "") {
  showView("login");
  const onSuccessPage = location.pathname === "/success";
  $("login-lead").textContent = onSuccessPage
    ? "Sign in to finish your upgrade to Pro."
    : "Use your mobile number. We'll send you a one-time code; a new number gets an account.";
  $("login-error").textContent = message;
  showPhoneStep();
}

function showPhoneStep() {
  $("phone-form").hidden = false;
  $("otp-form").hidden = true;
  $("phone").focus();
}

function busy(button, label) {
  const old = button.textContent;
  button.disabled = true;
  button.textContent = label;
  return () => {
    button.disabled = false;
    button.textContent = old;
  };
}

async function requestCode(number) {
  const answer = await api.sendOtp(number);
  $("otp-number").textContent = answer.mobileNumber || number;
  const otp = $("otp");
  // In development the API returns the code: fill it in, as the SMS autofill would.
  otp.value = answer.otp || "";
  $("dev-otp-note").hidden = !answer.otp;
  (answer.otp ? $("otp-submit") : otp).focus();
}

async function submitPhone(event) {
  event.preventDefault();
  const number = $("phone").value.trim();
  $("login-error").textContent = "";
  if (!number) {
    $("login-error").textContent = "Enter your mobile number.";
    $("phone").focus();
    return;
  }
  const done = busy($("phone-submit"), "Sending code…");
  try {
    try {
      await api.signup(number); // a new number gets an account; a known one answers 409
    } catch (error) {
      if (!(error instanceof ApiError && error.code === "mobile_number_taken")) throw error;
    }
    state.loginNumber = number;
    $("phone-form").hidden = true;
    $("otp-form").hidden = false;
    await requestCode(number);
  } catch (error) {
    $("login-error").textContent = fieldMessage(error);
    if (!$("otp-form").hidden && !$("otp").value) $("otp").focus();
    else if ($("otp-form").hidden) $("phone").focus();
  } finally {
    done();
  }
}

async function submitOtp(event) {
  event.preventDefault();
  const otp = $("otp").value.trim();
  $("login-error").textContent = "";
  if (!/^\d{6}$/.test(otp)) {
    $("login-error").textContent = "Enter the 6-digit code.";
    $("otp").focus();
    return;
  }
  const done = busy($("otp-submit"), "Signing in…");
  try {
    const answer = await api.verifyOtp(state.loginNumber, otp);
    session.token = answer.token || answer.data?.token;
    $("otp").value = "";
    $("phone").value = "";
    route();
  } catch (error) {
    $("login-error").textContent = fieldMessage(error);
    $("otp").select();
  } finally {
    done();
  }
}

async function resendCode() {
  $("login-error").textContent = "";
  const done = busy($("resend"), "Sending…");
  try {
    await requestCode(state.loginNumber);
    toast("A new code is on its way.");
  } catch (error) {
    $("login-error").textContent = fieldMessage(error);
  } finally {
    done();
  }
}

function endSession(message) {
  state.active?.controller.abort();
  session.token = null;
  Object.assign(state, {
    user: null,
    rooms: [],
    nextCursor: null,
    roomId: null,
    messages: [],
    hasMore: false,
    usage: null,
    models: null,
    active: null,
    sending: false,
  });
  loaded = null;
  openSeq++;
  $("room-list").replaceChildren();
  $("messages").replaceChildren();
  clearSearch();
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  closeSidebar();
  if (location.pathname !== "/success") history.replaceState(null, "", "/");
  showLogin(message);
}

session.onExpired = (error) => {
  if (!session.token) return;
  endSession(
    error.code === "token_revoked"
      ? "You were signed out. Sign in again to continue."
      : "Your session has ended. Sign in again to continue.",
  );
};

async function logout() {
  const done = busy($("logout"), "Logging out…");
  try {
    await api.logout();
  } catch {
    // Signed out here either way; the token is dropped below.
  } finally {
    done();
  }
  endSession("");
  toast("You're logged out.");
}

// --- account and usage ------------------------------------------------------------------

async function loadMe() {
  const answer = await api.me();
  state.user = answer.data.user;
  $("account-number").textContent = state.user.mobileNumber;
}

async function refreshUsage() {
  try {
    const [usage, models] = await Promise.all([api.usage(), api.models()]);
    state.usage = usage.data;
    state.models = models.data;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) throw error;
  }
  renderUsage();
  renderModelPicker();
}

// --- the model of a chat (its tier's own, or one its tier allows) ------------------------

function renderModelPicker() {
  const select = $("model-select");
  const room = state.roomId ? roomById(state.roomId) : null;
  const models = state.models;
  select.hidden = !room || !models;
  if (select.hidden) return;
  const others = models.allowed.filter((name) => name !== models.default);
  const options = [new Option(`${models.default} (your plan's)`, "")];
  for (const name of others) options.push(new Option(name, name));
  select.replaceChildren(...options);
  select.value = others.includes(room.model) ? room.model : "";
  select.disabled = others.length === 0;
  select.title = select.disabled ? "Pro can choose the model of each chat" : "";
}

async function chooseModel() {
  const roomId = state.roomId;
  const value = $("model-select").value || null;
  try {
    applyRoom((await api.chooseModel(roomId, value)).data.chatroom);
    toast(value ? `This chat now uses ${value}.` : "This chat now uses your plan's model.");
  } catch (error) {
    renderModelPicker();
    showError(error);
  }
}

const isPro = () => state.usage?.tier === "PRO";
const atLimit = () =>
  !!state.usage && !isPro() && state.usage.limit != null && state.usage.remaining <= 0;

function renderUsage() {
  const usage = state.usage;
  $("upgrade-top").hidden = !usage || isPro();
  $("pro-badge").hidden = !isPro();
  $("plan-name").textContent = usage ? (isPro() ? "Pro plan" : "Basic plan") : "";
  const limited = atLimit();
  $("limit-banner").hidden = !limited;
  if (limited) {
    $("limit-text").textContent =
      `You've used all ${usage.limit} prompts of the Basic plan for today. ` +
      `You can send more ${whenPhrase(usage.resetsAt)}, or upgrade to Pro for unlimited prompts.`;
  }
  let line = "";
  if (usage && isPro()) line = "Pro · unlimited prompts";
  else if (usage && !limited && usage.limit != null) {
    const noun = usage.limit === 1 ? "prompt" : "prompts";
    line = `${usage.remaining} of ${usage.limit} ${noun} left today · resets ${whenPhrase(usage.resetsAt)}`;
  }
  $("usage-line").textContent = line;
  updateComposer();
}

async function upgrade(button) {
  const done = busy(button, "Opening checkout…");
  try {
    const answer = await api.subscribe();
    const url = safeUrl(answer.data.checkoutUrl);
    if (!url) throw new Error("The checkout address is not valid.");
    location.assign(url);
  } catch (error) {
    done();
    if (error instanceof ApiError && error.code === "already_pro") {
      await refreshUsage();
      toast("You're already on Pro.");
    } else {
      showError(error);
    }
  }
}

// --- the room list ----------------------------------------------------------------------

async function loadRooms(more = false) {
  const answer = await api.rooms(more ? state.nextCursor : null);
  const rooms = answer.data.chatrooms;
  if (more) state.rooms = [...state.rooms, ...rooms.filter((r) => !roomById(r.id))];
  else {
    // A chat created while this page was on its way (the first prompt right after sign-in)
    // is newer than all of it: keep it.
    const listed = new Set(rooms.map((r) => r.id));
    const newest = rooms[0]?.createdAt ?? "";
    state.rooms = [...state.rooms.filter((r) => !listed.has(r.id) && r.createdAt > newest), ...rooms];
  }
  state.nextCursor = answer.data.nextCursor;
  renderRooms();
  renderTitle();
}

const roomById = (id) => state.rooms.find((room) => room.id === id);

function renderRooms() {
  const list = $("room-list");
  list.replaceChildren(
    ...state.rooms.map((room) => {
      const item = el("li", "room-item");
      item.dataset.id = room.id;
      const link = el("a", "room-link", room.name);
      link.href = `/c/${encodeURIComponent(room.id)}`;
      link.title = room.name;
      if (room.id === state.roomId) {
        item.classList.add("active");
        link.setAttribute("aria-current", "page");
      }
      const more = el("button", "room-more");
      more.type = "button";
      more.setAttribute("aria-label", `Options for ${room.name}`);
      more.setAttribute("aria-haspopup", "menu");
      more.setAttribute("aria-expanded", "false");
      more.append(icon("more"));
      item.append(link, more);
      return item;
    }),
  );
  $("rooms-empty").hidden = state.rooms.length > 0;
  $("more-rooms").hidden = !state.nextCursor;
}

function applyRoom(room) {
  const known = roomById(room.id);
  if (known) Object.assign(known, { name: room.name, updatedAt: room.updatedAt, model: room.model });
  else state.rooms.unshift({ ...room });
  renderRooms();
  renderTitle();
  renderModelPicker();
}

function moveRoomToTop(id) {
  const index = state.rooms.findIndex((room) => room.id === id);
  if (index > 0) state.rooms.unshift(...state.rooms.splice(index, 1));
  renderRooms();
}

function renderTitle() {
  const name = state.roomId ? roomById(state.roomId)?.name || "" : "";
  $("room-title").textContent = name || "Gemini";
  document.title = name ? `${name} - Gemini` : "Gemini";
}

function openMenu(button, roomId) {
  const menu = $("room-menu");
  menuRoom = roomId;
  menuButton = button;
  button.setAttribute("aria-expanded", "true");
  menu.hidden = false;
  const box = button.getBoundingClientRect();
  const top = Math.min(box.bottom + 4, window.innerHeight - menu.offsetHeight - 8);
  menu.style.top = `${Math.max(8, top)}px`;
  menu.style.left = `${Math.max(8, Math.min(box.left, window.innerWidth - menu.offsetWidth - 8))}px`;
  menu.querySelector("button").focus();
}

function closeMenu({ restoreFocus = false } = {}) {
  const menu = $("room-menu");
  if (menu.hidden) return;
  menu.hidden = true;
  menuButton?.setAttribute("aria-expanded", "false");
  if (restoreFocus) menuButton?.focus();
  menuButton = null;
}

function askRename(roomId) {
  const room = roomById(roomId);
  if (!room) return;
  const dialog = $("rename-dialog");
  dialog.dataset.id = roomId;
  $("rename-input").value = room.name;
  dialog.showModal();
  $("rename-input").select();
}

async function submitRename(event) {
  event.preventDefault();
  const dialog = $("rename-dialog");
  const name = $("rename-input").value.trim();
  if (!name) {
    $("rename-input").focus();
    return;
  }
  dialog.close();
  const room = roomById(dialog.dataset.id);
  if (!room || name === room.name) return;
  const old = room.name;
  room.name = name; // at once; undone if the server refuses
  renderRooms();
  renderTitle();
  try {
    applyRoom((await api.renameRoom(room.id, name)).data.chatroom);
    titlePolls.delete(room.id);
  } catch (error) {
    room.name = old;
    renderRooms();
    renderTitle();
    toast(fieldMessage(error));
  }
}

function askDelete(roomId) {
  const room = roomById(roomId);
  if (!room) return;
  const dialog = $("delete-dialog");
  dialog.dataset.id = roomId;
  $("delete-name").textContent = room.name;
  dialog.showModal();
  dialog.querySelector("button.danger").focus();
}

async function submitDelete(event) {
  event.preventDefault();
  const dialog = $("delete-dialog");
  dialog.close();
  const id = dialog.dataset.id;
  try {
    await api.deleteRoom(id);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) {
      showError(error);
      return;
    }
  }
  state.rooms = state.rooms.filter((room) => room.id !== id);
  renderRooms();
  if (state.roomId === id) navigate("/");
  toast("Chat deleted.");
}

/** The automatic title of a room called "New chat" arrives a few seconds after its first
 * reply: look again a few times. */
async function pollTitle(roomId) {
  if (titlePolls.has(roomId) || roomById(roomId)?.name !== DEFAULT_ROOM_NAME) return;
  titlePolls.add(roomId);
  try {
    for (const delay of TITLE_POLL_DELAYS_MS) {
      await sleep(delay);
      if (!titlePolls.has(roomId) || !session.token || !roomById(roomId)) return;
      const room = (await api.room(roomId, { limit: 1 })).data.chatroom;
      if (room.name !== DEFAULT_ROOM_NAME) {
        applyRoom(room);
        return;
      }
    }
  } catch {
    // The title shows at the next load of the list.
  } finally {
    titlePolls.delete(roomId);
  }
}

// --- sidebar on small screens -----------------------------------------------------------

function openSidebar() {
  $("sidebar").classList.add("open");
  $("scrim").hidden = false;
  $("open-sidebar").setAttribute("aria-expanded", "true");
  $("new-chat").focus();
}

function closeSidebar() {
  if (!$("sidebar").classList.contains("open")) return;
  $("sidebar").classList.remove("open");
  $("scrim").hidden = true;
  $("open-sidebar").setAttribute("aria-expanded", "false");
}

// --- the conversation -------------------------------------------------------------------

const streamUrlOf = (reply) =>
  `/api/v1/chatroom/${encodeURIComponent(reply.chatroomId)}/message/${encodeURIComponent(reply.id)}/stream`;

async function openRoom(roomId) {
  const seq = ++openSeq;
  detachStream();
  closeMenu();
  closeSidebar();
  state.roomId = roomId;
  state.messages = [];
  state.hasMore = false;
  renderRooms();
  renderTitle();
  renderModelPicker();
  renderMessages();
  if (!roomId) {
    focusPrompt();
    return;
  }
  try {
    const room = (await api.room(roomId)).data.chatroom;
    if (seq !== openSeq) return;
    state.messages = room.messages;
    state.hasMore = room.hasMore;
    applyRoom(room);
    renderMessages();
    scrollToEnd(true);
    revealFound(rowOf, async () => {
      const shown = state.messages.length;
      if (seq === openSeq && state.hasMore) await loadEarlier();
      return seq === openSeq && state.messages.length > shown;
    });
    focusPrompt();
    const last = state.messages.at(-1);
    if (last?.role === "GEMINI" && PENDING.has(last.status)) follow(last, streamUrlOf(last));
  } catch (error) {
    if (seq !== openSeq) return;
    if (error instanceof ApiError && error.status === 404) {
      state.rooms = state.rooms.filter((room) => room.id !== roomId);
      history.replaceState(null, "", "/");
      openRoom(null);
      toast("That chat doesn't exist any more.");
    } else {
      showError(error);
    }
  }
}

async function loadEarlier() {
  const first = state.messages[0];
  if (!first || !state.roomId) return;
  const roomId = state.roomId;
  const done = busy($("load-earlier"), "Loading…");
  try {
    const room = (await api.room(roomId, { before: first.id })).data.chatroom;
    if (roomId !== state.roomId) return;
    const box = $("conversation");
    const fromBottom = box.scrollHeight - box.scrollTop;
    state.messages = [...room.messages, ...state.messages];
    state.hasMore = room.hasMore;
    renderMessages();
    box.scrollTop = box.scrollHeight - fromBottom;
  } catch (error) {
    showError(error);
  } finally {
    done();
  }
}

function nearEnd() {
  const box = $("conversation");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

function scrollToEnd(force = false) {
  const box = $("conversation");
  if (force || nearEnd()) box.scrollTop = box.scrollHeight;
}

function renderMessages() {
  const list = $("messages");
  list.replaceChildren(...state.messages.map(messageView));
  $("welcome").hidden = state.roomId !== null || state.messages.length > 0;
  $("load-earlier").hidden = !state.hasMore;
  updateComposer();
}

function messageView(message) {
  if (message.role === "USER") {
    const row = el("div", "msg user");
    row.dataset.id = message.id;
    const tools = el("div", "msg-tools");
    const change = el("button", "chip edit", "Edit");
    change.type = "button";
    change.disabled = !!state.active || state.sending || atLimit();
    tools.append(...[branchNav(message), change].filter(Boolean));
    row.append(el("div", "bubble", message.content), tools);
    return row;
  }
  const row = el("article", "msg model");
  row.dataset.id = message.id;
  row.setAttribute("aria-label", "Gemini");
  const avatar = el("div", "avatar");
  avatar.append(icon("spark"));
  const body = el("div", "msg-body");
  body.append(el("div", "md"), el("p", "msg-note"), el("div", "msg-actions"), el("p", "msg-model"));
  row.append(avatar, body);
  fillReply(row, message);
  return row;
}

function noteFor(reply) {
  switch (reply.status) {
    case "cancelled":
      return "You stopped this response.";
    case "failed":
      return reply.error || "Something went wrong and no reply was generated. Try again.";
    case "blocked":
      return "This response was blocked for safety reasons.";
    default:
      return "";
  }
}

function fillReply(row, reply) {
  const pending = PENDING.has(reply.status);
  row.classList.toggle("pending", pending);
  row.setAttribute("aria-busy", String(pending));
  row.dataset.status = reply.status;
  const md = row.querySelector(".md");
  if (pending && !reply.content) {
    const dots = el("div", "thinking");
    dots.setAttribute("aria-label", "Gemini is thinking");
    dots.append(el("span"), el("span"), el("span"));
    md.replaceChildren(dots);
  } else {
    md.replaceChildren(renderMarkdown(reply.content));
  }
  const note = row.querySelector(".msg-note");
  note.textContent = noteFor(reply);
  note.hidden = !note.textContent;
  const model = row.querySelector(".msg-model");
  model.textContent = reply.model || "";
  model.hidden = !reply.model;
  const actions = row.querySelector(".msg-actions");
  actions.replaceChildren();
  if (pending) return;
  if (reply.content) {
    const copy = el("button", "chip copy");
    copy.type = "button";
    copy.append(icon("copy"), "Copy");
    actions.append(copy);
  }
  const nav = branchNav(reply);
  if (nav) actions.append(nav);
  if (state.messages.at(-1) === reply) {
    const again = el("button", "chip regenerate");
    again.type = "button";
    again.append(icon("redo"), "Regenerate");
    again.disabled = atLimit() || state.sending || !!state.active;
    actions.append(again);
  }
}

function rowOf(id) {
  return $("messages").querySelector(`[data-id="${CSS.escape(id)}"]`);
}

/** Re-render a reply at the next frame (tokens arrive faster than frames). */
function renderSoon(reply) {
  if (rendering.has(reply)) return;
  rendering.add(reply);
  requestAnimationFrame(() => {
    rendering.delete(reply);
    renderReply(reply);
  });
}

function renderReply(reply) {
  const row = rowOf(reply.id);
  if (!row) return;
  const pinned = nearEnd();
  fillReply(row, reply);
  if (pinned) scrollToEnd(true);
}

function updateComposer() {
  const prompt = $("prompt");
  const generating = !!state.active;
  const limited = atLimit();
  prompt.disabled = limited;
  prompt.placeholder = limited ? "Daily limit reached" : "Ask Gemini";
  $("send").hidden = generating;
  $("stop").hidden = !generating;
  $("stop").disabled = !!state.active?.stopping;
  $("send").disabled = limited || generating || state.sending || !prompt.value.trim();
  for (const button of $("messages").querySelectorAll(".regenerate, .edit")) {
    button.disabled = limited || generating || state.sending;
  }
}

/** Focus the message box, where a keyboard is at hand (on a touch screen it would open the
 * on-screen keyboard unasked). */
function focusPrompt() {
  if (matchMedia("(pointer: fine)").matches) $("prompt").focus();
}

function resizePrompt() {
  const prompt = $("prompt");
  prompt.style.height = "auto";
  prompt.style.height = `${Math.min(prompt.scrollHeight, 240)}px`;
}

function setPrompt(text) {
  $("prompt").value = text;
  resizePrompt();
  updateComposer();
}

function limitReached(error) {
  const body = error.body || {};
  state.usage = {
    ...(state.usage || { tier: "BASIC" }),
    limit: body.limit ?? state.usage?.limit,
    used: body.used ?? state.usage?.used,
    remaining: 0,
    resetsAt: body.resetsAt ?? state.usage?.resetsAt,
  };
  renderUsage();
  renderMessages();
}

async function sendPrompt() {
  const text = $("prompt").value.trim();
  if (!text || state.sending || state.active || atLimit()) return;
  state.sending = true;
  updateComposer();
  const prompt = { id: `local-${Date.now()}`, role: "USER", content: text, status: "completed" };
  let roomId = state.roomId;
  try {
    if (!roomId) {
      const room = (await api.createRoom()).data.chatroom;
      roomId = room.id;
      state.roomId = roomId;
      openSeq++;
      history.pushState(null, "", `/c/${encodeURIComponent(roomId)}`);
      applyRoom(room);
    }
    state.messages.push(prompt);
    renderMessages();
    setPrompt("");
    scrollToEnd(true);
    const answer = (await api.sendMessage(roomId, text)).data;
    Object.assign(prompt, answer.message);
    const reply = {
      id: answer.reply.id,
      chatroomId: roomId,
      role: "GEMINI",
      content: "",
      status: answer.reply.status,
      replyTo: answer.message.id,
      model: answer.reply.model,
    };
    state.sending = false;
    if (state.roomId !== roomId) return;
    state.messages.push(reply);
    renderMessages();
    scrollToEnd(true);
    moveRoomToTop(roomId);
    follow(reply, answer.reply.streamUrl);
    refreshUsage().catch(() => {});
  } catch (error) {
    state.messages = state.messages.filter((m) => m !== prompt);
    renderMessages();
    if (!$("prompt").value) setPrompt(text);
    if (error instanceof ApiError && error.code === "daily_limit_reached") limitReached(error);
    else if (error instanceof ApiError && error.status === 409) {
      toast("Wait for the reply to finish before sending another message.");
    } else showError(error);
  } finally {
    state.sending = false;
    updateComposer();
  }
}

async function follow(reply, streamUrl) {
  const active = { roomId: reply.chatroomId, replyId: reply.id, controller: new AbortController() };
  state.active = active;
  updateComposer();
  try {
    const done = await followReply(
      (lastEventId, signal) => api.openStream(streamUrl, lastEventId, signal),
      (text) => {
        reply.content = text;
        if (reply.status === "queued") reply.status = "generating";
        renderSoon(reply);
      },
      active.controller.signal,
    );
    if (state.active === active) settle(reply, done.reply || { status: done.status });
  } catch (error) {
    if (error.name === "AbortError") return; // stopped, or the room was left
    if (error instanceof ApiError && error.status === 401) return;
    Object.assign(reply, {
      status: "failed",
      error: "The connection was lost before the reply finished. Reload the page to see it.",
    });
    renderReply(reply);
  } finally {
    if (state.active === active) {
      state.active = null;
      renderMessages();
    }
  }
}

function settle(reply, final) {
  Object.assign(reply, final);
  if (state.active?.replyId === reply.id) state.active = null;
  const pinned = nearEnd();
  renderMessages();
  if (pinned) scrollToEnd(true);
  refreshUsage().catch(() => {});
  pollTitle(reply.chatroomId);
}

function detachStream() {
  if (!state.active) return;
  state.active.controller.abort(); // stops reading only: the reply goes on being generated
  state.active = null;
}

async function stopReply() {
  const active = state.active;
  if (!active || active.stopping) return;
  active.stopping = true;
  updateComposer();
  try {
    const stopped = (await api.stop(active.roomId, active.replyId)).data.reply;
    active.controller.abort();
    const reply = state.messages.find((m) => m.id === stopped.id);
    if (reply) settle(reply, stopped);
    if (state.active === active) state.active = null;
    renderMessages();
    focusPrompt();
  } catch (error) {
    active.stopping = false;
    updateComposer();
    showError(error);
  }
}

async function regenerate(reply) {
  if (state.sending || state.active || atLimit()) return;
  state.sending = true;
  updateComposer();
  const roomId = state.roomId;
  try {
    const answer = (await api.regenerate(roomId, reply.id)).data;
    const fresh = {
      id: answer.reply.id,
      chatroomId: roomId,
      role: "GEMINI",
      content: "",
      status: answer.reply.status,
      replyTo: reply.replyTo,
      model: answer.reply.model,
      siblingIds: [...(reply.siblingIds || [reply.id]), answer.reply.id],
    };
    state.sending = false;
    if (state.roomId !== roomId) return;
    state.messages = state.messages.map((m) => (m === reply ? fresh : m));
    renderMessages();
    follow(fresh, answer.reply.streamUrl);
    refreshUsage().catch(() => {});
  } catch (error) {
    if (error instanceof ApiError && error.code === "daily_limit_reached") limitReached(error);
    else showError(error);
  } finally {
    state.sending = false;
    updateComposer();
  }
}

// --- branches: other versions of a message, and editing a prompt ---------------------------

async function showVersion(messageId) {
  if (state.sending) return;
  detachStream(); // a reply still coming goes on being generated; its branch shows it later
  const roomId = state.roomId;
  try {
    const room = (await api.showBranch(roomId, messageId)).data.chatroom;
    if (state.roomId !== roomId) return;
    state.messages = room.messages;
    state.hasMore = room.hasMore;
    renderMessages();
    const last = state.messages.at(-1);
    if (last?.role === "GEMINI" && PENDING.has(last.status)) follow(last, streamUrlOf(last));
  } catch (error) {
    showError(error);
  }
}

function startEdit(row) {
  const prompt = state.messages.find((m) => m.id === row.dataset.id);
  if (!prompt || state.active || state.sending) return;
  const form = editForm(prompt);
  row.replaceChildren(form);
  const text = form.querySelector("textarea");
  text.focus();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    resend(prompt, text.value.trim());
  });
}

/** Send an edited prompt: the chat goes on from its new version (the old stays a branch). */
async function resend(prompt, text) {
  if (!text || text === prompt.content) return renderMessages();
  const roomId = state.roomId;
  state.sending = true;
  try {
    const answer = (await api.editMessage(roomId, prompt.id, text)).data;
    if (state.roomId !== roomId) return;
    const versions = [...(prompt.siblingIds || [prompt.id]), answer.message.id];
    const reply = { ...pendingReply(roomId, answer), replyTo: answer.message.id };
    const at = state.messages.indexOf(prompt);
    state.messages = [...state.messages.slice(0, at), { ...answer.message, siblingIds: versions }, reply];
    state.sending = false;
    renderMessages();
    scrollToEnd(true);
    follow(reply, answer.reply.streamUrl);
    refreshUsage().catch(() => {});
  } catch (error) {
    renderMessages();
    if (error instanceof ApiError && error.code === "daily_limit_reached") limitReached(error);
    else showError(error);
  } finally {
    state.sending = false;
    updateComposer();
  }
}

function pendingReply(roomId, answer) {
  return {
    id: answer.reply.id,
    chatroomId: roomId,
    role: "GEMINI",
    content: "",
    status: answer.reply.status,
    model: answer.reply.model,
  };
}

async function copyReply(reply) {
  await copyText(reply.content);
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied to the clipboard.");
  } catch {
    toast("Couldn't copy: the browser did not allow it.");
  }
}

// --- checkout return pages --------------------------------------------------------------

function setStatus({ title, text, spinner = false, pro = false, action = null }) {
  $("status-title").textContent = title;
  $("status-text").textContent = text;
  $("status-spinner").hidden = !spinner;
  $("status-badge").hidden = !pro;
  const button = $("status-action");
  button.hidden = !action;
  if (action) {
    button.textContent = action.label;
    button.onclick = action.run;
  }
  document.title = `${title} - Gemini`;
}

const backToChat = { label: "Back to chat", run: () => navigate("/") };

async function showSuccess() {
  showView("status");
  setStatus({
    title: "Confirming your payment…",
    text: "Stripe has taken your payment. Pro starts as soon as it confirms, in a few seconds.",
    spinner: true,
  });
  const deadline = Date.now() + PRO_WAIT_MS;
  while (Date.now() < deadline && location.pathname === "/success" && session.token) {
    try {
      const [subscription, usage] = await Promise.all([api.subscription(), api.usage()]);
      if (subscription.data.tier === "PRO" && usage.data.tier === "PRO") {
        state.usage = usage.data;
        renderUsage();
        const end = subscription.data.currentPeriodEnd;
        const renews = end ? ` It renews on ${new Date(end).toLocaleDateString()}.` : "";
        setStatus({
          title: "You're on Pro",
          text: `Unlimited prompts, starting now.${renews}`,
          pro: true,
          action: { label: "Start chatting", run: () => navigate("/") },
        });
        $("status-action").focus();
        return;
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
    }
    await sleep(1000);
  }
  if (location.pathname !== "/success" || !session.token) return;
  setStatus({
    title: "Still confirming…",
    text: "Pro is not active yet. Confirmation can take a minute; look again in a moment.",
    action: { label: "Check again", run: showSuccess },
  });
}

function showCancelled() {
  showView("status");
  setStatus({
    title: "Checkout cancelled",
    text: "No payment was made. You're still on the Basic plan, and can upgrade any time.",
    action: backToChat,
  });
  $("status-action").focus();
}

// --- wiring -----------------------------------------------------------------------------

function startNewChat() {
  closeSidebar();
  navigate("/");
  setPrompt($("prompt").value);
  focusPrompt();
}

function wire() {
  $("phone-form").addEventListener("submit", submitPhone);
  $("otp-form").addEventListener("submit", submitOtp);
  $("change-number").addEventListener("click", () => {
    $("login-error").textContent = "";
    showPhoneStep();
  });
  $("resend").addEventListener("click", resendCode);
  $("otp").addEventListener("input", (event) => {
    event.target.value = event.target.value.replace(/\D/g, "").slice(0, 6);
  });

  $("new-chat").addEventListener("click", startNewChat);
  $("new-chat-top").addEventListener("click", startNewChat);
  $("more-rooms").addEventListener("click", () => loadRooms(true).catch(showError));
  $("logout").addEventListener("click", logout);
  $("upgrade-top").addEventListener("click", (event) => upgrade(event.currentTarget));
  $("upgrade-limit").addEventListener("click", (event) => upgrade(event.currentTarget));
  $("open-sidebar").addEventListener("click", openSidebar);
  $("close-sidebar").addEventListener("click", () => {
    closeSidebar();
    $("open-sidebar").focus();
  });
  $("scrim").addEventListener("click", closeSidebar);
  $("load-earlier").addEventListener("click", loadEarlier);

  $("room-list").addEventListener("click", (event) => {
    const more = event.target.closest(".room-more");
    const link = event.target.closest(".room-link");
    if (more) {
      const id = more.closest(".room-item").dataset.id;
      if (!$("room-menu").hidden && menuRoom === id) closeMenu();
      else openMenu(more, id);
    } else if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey && event.button === 0) {
      event.preventDefault();
      navigate(new URL(link.href).pathname);
    }
  });
  $("room-menu").addEventListener("click", (event) => {
    const item = event.target.closest("[data-action]");
    if (!item) return;
    closeMenu();
    if (item.dataset.action === "rename") askRename(menuRoom);
    else if (item.dataset.action === "delete") askDelete(menuRoom);
    else roomAction(item.dataset.action, roomById(menuRoom));
  });
  $("room-menu").addEventListener("keydown", (event) => {
    const items = [...$("room-menu").querySelectorAll("button")];
    const at = items.indexOf(document.activeElement);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      items[(at + step + items.length) % items.length].focus();
    } else if (event.key === "Escape" || event.key === "Tab") {
      event.preventDefault();
      closeMenu({ restoreFocus: true });
    }
  });
  document.addEventListener("click", (event) => {
    if (!event.target.closest("#room-menu, .room-more")) closeMenu();
  });
  $("rename-form").addEventListener("submit", submitRename);
  $("model-select").addEventListener("change", chooseModel);
  $("delete-form").addEventListener("submit", submitDelete);
  wireShareDialog(toast, showError);
  $("delete-account").addEventListener("click", () => openDeleteAccount(state.user.mobileNumber));
  wireDeleteAccount(() => {
    endSession("");
    toast("Your account and its chats were deleted.");
  });
  for (const button of document.querySelectorAll("dialog [data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }

  const prompt = $("prompt");
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    sendPrompt();
  });
  prompt.addEventListener("input", () => {
    resizePrompt();
    updateComposer();
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendPrompt();
    }
  });
  $("stop").addEventListener("click", stopReply);
  for (const chip of document.querySelectorAll(".suggestion")) {
    chip.addEventListener("click", () => {
      setPrompt(chip.textContent);
      prompt.focus();
    });
  }
  $("messages").addEventListener("click", (event) => {
    const step = event.target.closest(".branch-step");
    if (step?.dataset.target) showVersion(step.dataset.target);
    const change = event.target.closest(".edit");
    if (change) startEdit(change.closest(".msg"));
    if (event.target.closest(".edit-cancel")) renderMessages();
    const button = event.target.closest(".copy, .regenerate");
    if (!button) return;
    const reply = state.messages.find((m) => m.id === button.closest(".msg").dataset.id);
    if (!reply) return;
    if (button.classList.contains("copy")) copyReply(reply);
    else regenerate(reply);
  });
  $("messages").addEventListener("click", (event) => {
    const button = event.target.closest(".copy-code");
    if (button) copyText(button.closest(".code-block").querySelector("code").textContent);
  });

  document.addEventListener("keydown", (event) => {
    const mod = event.ctrlKey || event.metaKey;
    if (mod && event.shiftKey && event.key.toLowerCase() === "o" && session.token) {
      event.preventDefault();
      startNewChat();
    } else if (event.key === "Escape" && $("sidebar").classList.contains("open")) {
      closeSidebar();
      $("open-sidebar").focus();
    }
  });
  window.addEventListener("popstate", route);
  // Back from Checkout out of the back/forward cache: load afresh (plan, buttons, chats).
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) location.reload();
  });
}

wire();
initSearch(navigate);
route();
