// Who the console calls the API as. config.json (written by the deploy on AWS; empty on the local stack)
// may name the API's URL and a Cognito sign-in (its hosted UI's domain and the console's app client):
// then a "Sign in" button sends the person to the hosted UI (authorization code with PKCE: the page holds
// no secret), and the ID token the code is exchanged for is kept for this tab only (sessionStorage) and
// sent as `Authorization: Bearer`. Without a sign-in the console runs keyless, or with a typed client key.

const TOKEN = "idToken";
const EXPIRES = "idTokenExpires";
const PENDING = "signInPending"; // { state, verifier } between the redirect to the hosted UI and back

let loaded;

export function config() {
  if (!loaded) {
    loaded = fetch(new URL("config.json", document.baseURI), { cache: "no-store" })
      .then((response) => (response.ok ? response.json() : {}))
      .catch(() => ({}));
  }
  return loaded;
}

export async function apiBase() {
  const { apiUrl } = await config();
  return apiUrl ? apiUrl.replace(/\/?$/, "/") : `${window.location.origin}/`;
}

export function token() {
  const expires = Number(sessionStorage.getItem(EXPIRES) || 0);
  if (expires && expires <= Date.now()) signOutLocally();
  return sessionStorage.getItem(TOKEN);
}

function signOutLocally() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(EXPIRES);
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

function redirectUri() {
  return new URL(".", window.location.href).href; // the console's own page: the app client's callback
}

async function signIn(signInConfig) {
  const verifier = randomString();
  const state = randomString();
  sessionStorage.setItem(PENDING, JSON.stringify({ state, verifier }));
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const url = new URL("/oauth2/authorize", signInConfig.domain);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: signInConfig.clientId,
    redirect_uri: redirectUri(),
    scope: "openid email",
    code_challenge_method: "S256",
    code_challenge: challenge,
    state,
  }).toString();
  window.location.assign(url.href);
}

// Back from the hosted UI with ?code=…&state=…: the code (and the verifier only this tab holds) for tokens.
async function finishSignIn(signInConfig) {
  const params = new URLSearchParams(window.location.search);
  const code = params.get("code");
  if (!code && !params.get("error")) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  window.history.replaceState(null, "", redirectUri()); // the code is used once: not left in the address bar
  if (!code) return `Sign-in failed: ${params.get("error_description") || params.get("error")}`;
  if (!pending || pending.state !== params.get("state")) return "Sign-in failed: this answer was not for this tab.";
  const response = await fetch(new URL("/oauth2/token", signInConfig.domain), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: signInConfig.clientId,
      code,
      redirect_uri: redirectUri(),
      code_verifier: pending.verifier,
    }),
  });
  if (!response.ok) return `Sign-in failed (${response.status}).`;
  const tokens = await response.json();
  sessionStorage.setItem(TOKEN, tokens.id_token);
  sessionStorage.setItem(EXPIRES, String(Date.now() + Number(tokens.expires_in || 3600) * 1000));
  return null;
}

function who(idToken) {
  try {
    const part = idToken.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part));
    return claims.email || claims["cognito:username"] || "signed in";
  } catch {
    return "signed in";
  }
}

// The sign-in controls, shown only where config.json names a sign-in.
export async function initAuth() {
  const { signIn: signInConfig } = await config();
  if (!signInConfig || !signInConfig.domain || !signInConfig.clientId) return;
  const status = document.getElementById("auth-status");
  const signInButton = document.getElementById("sign-in");
  const signOutButton = document.getElementById("sign-out");
  const problem = await finishSignIn(signInConfig).catch(() => "Sign-in failed: the token endpoint did not answer.");
  const render = () => {
    const current = token();
    signInButton.hidden = Boolean(current);
    signOutButton.hidden = !current;
    status.hidden = false;
    status.textContent = problem || (current ? `Signed in: ${who(current)}` : "Not signed in");
  };
  signInButton.addEventListener("click", () => signIn(signInConfig));
  signOutButton.addEventListener("click", () => {
    signOutLocally();
    const url = new URL("/logout", signInConfig.domain);
    url.search = new URLSearchParams({ client_id: signInConfig.clientId, logout_uri: redirectUri() }).toString();
    window.location.assign(url.href);
  });
  render();
}
