// The passkey ceremony for the invite (register) and sign-in pages: fetch options, ask the
// browser for a credential, send it back in webauthn-rs's JSON shape, then follow `next`.
// Plain ES2017, no dependencies; the pages work without it except for this step.
(function () {
  "use strict";

  var TEXT = {
    unsupported: "This browser cannot use passkeys. Try a recent Chrome, Safari, Edge or Firefox.",
    network: "Could not reach the server. Check your internet connection, then press the button to try again.",
    failed: "Something went wrong. Press the button to try again.",
    register: {
      busy: "Follow your browser's prompt to create the passkey…",
      checking: "Saving your passkey…",
      cancelled: "Passkey creation was cancelled or timed out. Press the button to try again.",
      exists: "This device already has a passkey for you. Ask your studio for the sign-in link instead.",
      device: "Your device could not create the passkey. Press the button to try again."
    },
    signin: {
      busy: "Follow your browser's prompt to sign in with your passkey…",
      checking: "Checking your passkey…",
      cancelled: "Sign-in was cancelled or timed out. Press the button to try again.",
      device: "Your device could not use the passkey. Press the button to try again."
    }
  };

  // A problem whose message is already a sentence for the person at the screen.
  function Shown(message) { this.message = message; }

  function fromB64url(s) {
    var b64 = String(s).replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buf) {
    if (!buf) return null;
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // webauthn-rs sends binary fields as base64url; the browser wants ArrayBuffers.
  function decodeOptions(pk) {
    pk.challenge = fromB64url(pk.challenge);
    if (pk.user && pk.user.id) pk.user.id = fromB64url(pk.user.id);
    ["excludeCredentials", "allowCredentials"].forEach(function (key) {
      if (Array.isArray(pk[key])) {
        pk[key] = pk[key].map(function (c) { return Object.assign({}, c, { id: fromB64url(c.id) }); });
      }
    });
    return pk;
  }

  function encodeCredential(cred, mode) {
    var r = cred.response;
    var response = mode === "register"
      ? {
          attestationObject: toB64url(r.attestationObject),
          clientDataJSON: toB64url(r.clientDataJSON),
          transports: typeof r.getTransports === "function" ? r.getTransports() : undefined
        }
      : {
          authenticatorData: toB64url(r.authenticatorData),
          clientDataJSON: toB64url(r.clientDataJSON),
          signature: toB64url(r.signature),
          userHandle: toB64url(r.userHandle)
        };
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: response,
      extensions: cred.getClientExtensionResults()
    };
  }

  // POSTs JSON; resolves to the parsed body of a 2xx answer, throws a Shown otherwise.
  async function post(url, body) {
    var res;
    try {
      res = await fetch(url, { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: body });
    } catch (e) { throw new Shown(TEXT.network); }
    var data = await res.json().catch(function () { return null; });
    if (!res.ok) throw new Shown((data && typeof data.error === "string" && data.error) || TEXT.failed);
    return data || {};
  }

  // Only same-origin pages are followed: `next` must never turn into a script or another site.
  function sameOrigin(url) {
    if (typeof url !== "string" || !url) return null;
    try { var u = new URL(url, location.href); } catch (e) { return null; }
    return u.origin === location.origin ? u.href : null;
  }

  async function ceremony(button, mode) {
    var text = TEXT[mode];
    var options = await post(button.dataset.options, "{}");
    if (!options.publicKey || !options.publicKey.challenge) throw new Shown(TEXT.failed);
    var publicKey = decodeOptions(options.publicKey);
    status(text.busy);
    var cred;
    try {
      cred = mode === "register"
        ? await navigator.credentials.create({ publicKey: publicKey })
        : await navigator.credentials.get({ publicKey: publicKey, mediation: "optional" });
    } catch (e) {
      var name = e && e.name;
      if (name === "NotAllowedError" || name === "AbortError") throw new Shown(text.cancelled);
      throw new Shown((name === "InvalidStateError" && text.exists) || text.device);
    }
    if (!cred) throw new Shown(text.cancelled);
    status(text.checking);
    var body = JSON.stringify({ ceremony: options.ceremony, credential: encodeCredential(cred, mode) });
    var done = await post(button.dataset.finish, body);
    var next = sameOrigin(done.next) || (mode === "signin" ? sameOrigin(button.dataset.next) : null);
    if (next) location.assign(next);
    else status("All done. You can close this tab.");
  }

  var statusLine = null;
  function status(message) { if (statusLine) statusLine.textContent = message; }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("passkey");
    statusLine = document.getElementById("status");
    if (!button) return;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      button.disabled = true;
      status(TEXT.unsupported);
      return;
    }
    var mode = button.dataset.mode === "register" ? "register" : "signin";
    button.addEventListener("click", async function () {
      if (button.disabled) return;
      button.disabled = true;
      status("");
      try {
        await ceremony(button, mode);
      } catch (e) {
        status(e instanceof Shown ? e.message : TEXT.failed);
        button.disabled = false;
      }
    });
  });
})();
