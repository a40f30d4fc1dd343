// Share and export, from a chat's menu: the share dialog makes a read-only link to the chat
// as it is now (shown once, to copy), and revokes it; export downloads the chat as
// Markdown or JSON. Text reaches the page only as textContent or an input's value.

import { api } from "./api.js";

const $ = (id) => document.getElementById(id);
let room = null; // the chat the dialog is open for
let notify = () => {};
let fail = () => {};

function showLink(url) {
  $("share-link").value = url;
  $("share-made").hidden = !url;
  $("share-create").textContent = url ? "Create a new link" : "Create link";
}

function openShareDialog(chat) {
  room = chat;
  $("share-name").textContent = chat.name;
  $("share-error").textContent = "";
  showLink("");
  $("share-dialog").showModal();
  $("share-create").focus();
}

async function whileBusy(button, work) {
  button.disabled = true;
  $("share-error").textContent = "";
  try {
    await work();
  } catch (error) {
    $("share-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

const createLink = () =>
  whileBusy($("share-create"), async () => {
    const share = (await api.share(room.id)).data.share;
    showLink(new URL(share.path, location.origin).href);
    $("share-copy").focus();
  });

const revokeLink = () =>
  whileBusy($("share-revoke"), async () => {
    await api.unshare(room.id);
    showLink("");
    notify("Link revoked: it no longer opens this chat.");
  });

async function copyLink() {
  try {
    await navigator.clipboard.writeText($("share-link").value);
    notify("Link copied to the clipboard.");
  } catch {
    $("share-link").select();
    notify("Couldn't copy: the link is selected, copy it yourself.");
  }
}

async function exportChat(chat, format) {
  try {
    const file = await api.exportRoom(chat.id, format);
    const url = URL.createObjectURL(file.blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = file.filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    fail(error);
  }
}

/** What the chat menu's Share and Export items do (`data-action`). */
export function roomAction(action, chat) {
  if (!chat) return;
  if (action === "share") openShareDialog(chat);
  else if (action === "export-md") exportChat(chat, "md");
  else if (action === "export-json") exportChat(chat, "json");
}

/** Wire the dialog's buttons; `toast` shows a note, `showError` an error. */
export function wireShareDialog(toast, showError) {
  notify = toast;
  fail = showError;
  $("share-create").addEventListener("click", createLink);
  $("share-revoke").addEventListener("click", revokeLink);
  $("share-copy").addEventListener("click", copyLink);
}
