// The API token of a server that requires one (--api-tokens). The console
// asks for it once, when the server first answers 401, and keeps it for
// this browser tab only (sessionStorage: gone when the tab closes, never
// sent to another origin). Every API call then carries it as
// `Authorization: Bearer`. Concurrent calls that meet a 401 share one
// prompt.

const KEY = "flowlens.token";

export function currentToken(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

function keep(token: string | null) {
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage refused (private mode): the token lasts for this page only.
  }
}

/** Headers that carry the token, if there is one. */
export function authorization(): Record<string, string> {
  const token = currentToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

let asking: Promise<string> | null = null;

/** Asks the user for a token (the server said `message`); resolves once entered. */
export function askForToken(message: string): Promise<string> {
  if (!asking) {
    asking = prompt(message).then((token) => {
      keep(token);
      asking = null;
      return token;
    });
  }
  return asking;
}

function prompt(message: string): Promise<string> {
  return new Promise((resolve) => {
    const veil = document.createElement("div");
    veil.className = "token-veil";
    const form = document.createElement("form");
    form.className = "token-form";
    form.setAttribute("role", "dialog");
    form.setAttribute("aria-modal", "true");
    form.setAttribute("aria-labelledby", "token-title");
    const title = document.createElement("h2");
    title.id = "token-title";
    title.textContent = "API token";
    const why = document.createElement("p");
    why.className = "muted";
    why.textContent = currentToken() ? `The token was refused: ${message}` : message;
    const label = document.createElement("label");
    label.textContent = "Token ";
    const input = document.createElement("input");
    input.type = "password";
    input.name = "token";
    input.autocomplete = "off";
    input.required = true;
    label.appendChild(input);
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Use token";
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = "Kept for this tab only.";
    form.append(title, why, label, button, note);
    veil.appendChild(form);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      veil.remove();
      resolve(token);
    });
    document.body.appendChild(veil);
    input.focus();
  });
}
