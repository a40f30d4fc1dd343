// Deleting the account, from the account menu. A code goes to the account's number, as
// at sign-in, and must be entered: a session alone cannot delete the account. Then every
// service erases the account and the session ends.

import { api } from "./api.js";

const $ = (id) => document.getElementById(id);
let deleted = () => {};

async function sendCode(number) {
  const answer = await api.sendOtp(number);
  // In development the API returns the code: fill it in, as the SMS autofill would.
  $("delete-account-code").value = answer.otp || "";
  $("delete-account-dev").hidden = !answer.otp;
}

export async function openDeleteAccount(number) {
  const dialog = $("delete-account-dialog");
  $("delete-account-number").textContent = number;
  $("delete-account-code").value = "";
  $("delete-account-error").textContent = "";
  dialog.showModal();
  $("delete-account-code").focus();
  try {
    await sendCode(number);
  } catch (error) {
    $("delete-account-error").textContent = error.message;
  }
}

async function confirmDeletion(event) {
  event.preventDefault();
  const code = $("delete-account-code").value.trim();
  const button = $("delete-account-confirm");
  if (!/^\d{6}$/.test(code)) {
    $("delete-account-error").textContent = "Enter the 6-digit code.";
    return;
  }
  button.disabled = true;
  try {
    await api.deleteAccount(code);
    $("delete-account-dialog").close();
    deleted();
  } catch (error) {
    $("delete-account-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

export function wireDeleteAccount(onDeleted) {
  deleted = onDeleted;
  $("delete-account-form").addEventListener("submit", confirmDeletion);
}
