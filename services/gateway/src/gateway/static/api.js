// The gateway's JSON API: `/api/v1/...`, bearer token, errors in one envelope.

import { StreamInterrupted } from "./sse.js";

const BASE = "/api/v1";
const TOKEN_KEY = "gemini.token";

/** An error answer: `status`, and `code`, `message` and the rest of the JSON envelope. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The server answered ${status}.`);
    this.status = status;
    this.code = body?.code || "error";
    this.body = body || {};
  }
}

/** The request never got an answer (offline, the server down). */
export class NetworkError extends Error {
  constructor() {
    super("Can't reach the server. Check your connection and try again.");
  }
}

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  },
  // Called with the ApiError when an authenticated request answers 401 (revoked, expired).
  onExpired: () => {},
};

async function send(method, path, { body, auth = true, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  if (auth && session.token) init.headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new NetworkError();
  }
  return response;
}

/** The ApiError of a failed answer; a 401 to an authenticated request ends the session. */
function failure(response, body, auth = true) {
  const error = new ApiError(response.status, body);
  if (response.status === 401 && auth !== false) session.onExpired(error);
  return error;
}

async function request(method, path, options = {}) {
  const response = await send(method, path, options);
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) throw failure(response, body, options.auth);
  return body;
}

export const api = {
  signup: (mobileNumber) =>
    request("POST", "/auth/signup", { body: { mobileNumber }, auth: false }),
  sendOtp: (mobileNumber) =>
    request("POST", "/auth/send-otp", { body: { mobileNumber }, auth: false }),
  verifyOtp: (mobileNumber, otp) =>
    request("POST", "/auth/verify-otp", { body: { mobileNumber, otp }, auth: false }),
  logout: () => request("POST", "/auth/logout"),
  me: () => request("GET", "/auth/me"),
  deleteAccount: (otp) => request("DELETE", "/user/me", { body: { otp } }),
  rooms: (cursor) =>
    request("GET", `/chatroom?limit=30${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`),
  room: (id, { limit = 50, before } = {}) =>
    request(
      "GET",
      `/chatroom/${encodeURIComponent(id)}?limit=${limit}` +
        (before ? `&before=${encodeURIComponent(before)}` : ""),
    ),
  createRoom: () => request("POST", "/chatroom", { body: {} }),
  renameRoom: (id, name) => request("PATCH", `/chatroom/${encodeURIComponent(id)}`, { body: { name } }),
  deleteRoom: (id) => request("DELETE", `/chatroom/${encodeURIComponent(id)}`),
  editMessage: (roomId, messageId, content) =>
    request("PUT", `/chatroom/${encodeURIComponent(roomId)}/message/${encodeURIComponent(messageId)}`, {
      body: { content },
    }),
  showBranch: (roomId, messageId) =>
    request("PUT", `/chatroom/${encodeURIComponent(roomId)}/branch`, { body: { messageId } }),
  sendMessage: (id, content) =>
    request("POST", `/chatroom/${encodeURIComponent(id)}/message`, { body: { content } }),
  stop: (roomId, replyId) =>
    request("POST", `/chatroom/${encodeURIComponent(roomId)}/message/${encodeURIComponent(replyId)}/stop`),
  regenerate: (roomId, replyId) =>
    request(
      "POST",
      `/chatroom/${encodeURIComponent(roomId)}/message/${encodeURIComponent(replyId)}/regenerate`,
    ),
  share: (id) => request("POST", `/chatroom/${encodeURIComponent(id)}/share`),
  unshare: (id) => request("DELETE", `/chatroom/${encodeURIComponent(id)}/share`),
  /** The chat as a file: `{blob, filename}` (format `md` or `json`). */
  async exportRoom(id, format) {
    const path = `/chatroom/${encodeURIComponent(id)}/export?format=${format}`;
    const response = await send("GET", path, { headers: { Accept: "*/*" } });
    if (!response.ok) throw failure(response, await response.json().catch(() => null));
    const disposition = response.headers.get("Content-Disposition") || "";
    const filename = /filename="([^"]+)"/.exec(disposition)?.[1] || `chat.${format}`;
    return { blob: await response.blob(), filename };
  },
  usage: () => request("GET", "/usage"),
  search: (q, cursor) =>
    request(
      "GET",
      `/search?q=${encodeURIComponent(q)}&limit=20` +
        (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""),
    ),
  models: () => request("GET", "/models"),
  chooseModel: (id, model) =>
    request("PUT", `/chatroom/${encodeURIComponent(id)}/model`, { body: { model } }),
  subscribe: () => request("POST", "/subscribe/pro"),
  subscription: () => request("GET", "/subscription/status"),

  /** Open a reply's event stream (a `streamUrl` from the API), resuming after `lastEventId`. */
  async openStream(streamUrl, lastEventId, signal) {
    if (!streamUrl.startsWith(`${BASE}/`)) throw new Error(`unexpected stream URL ${streamUrl}`);
    const headers = { Accept: "text/event-stream" };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let response;
    try {
      response = await send("GET", streamUrl.slice(BASE.length), { headers, signal });
    } catch (error) {
      if (error instanceof NetworkError) throw new StreamInterrupted(error.message);
      throw error;
    }
    if (response.ok) return response;
    const body = await response.json().catch(() => null);
    const error = new ApiError(response.status, body);
    if (response.status === 401) session.onExpired(error);
    if (response.status >= 500) throw new StreamInterrupted(error.message);
    throw error;
  },
};
