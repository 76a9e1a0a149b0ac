// The admin API as the console uses it: every data request carries the token (Authorization: Bearer); a failure
// becomes an Error whose message is the server's own error text (docs/admin-api.md "Conventions").

const KEY = 'parkway.token';

export function loadToken() {
  // A wall display opens /ui/#token=...: a fragment never reaches the server or its logs. It is moved into
  // session storage and removed from the address bar.
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    const t = decodeURIComponent(m[1]);
    const rest = location.hash.replace(/(^#|&)token=[^&]*/, '$1').replace(/^#&/, '#');
    history.replaceState(null, '', location.pathname + location.search + (rest === '#' ? '' : rest));
    if (t) sessionStorage.setItem(KEY, t);
  }
  return sessionStorage.getItem(KEY) || '';
}

export function saveToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function makeApi(token, onUnauthorized) {
  return async function api(method, path, body) {
    const init = { method, headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, `parkway is not reachable (${e.message})`);
    }
    const text = await res.text();
    let value = null;
    try {
      value = text ? JSON.parse(text) : null;
    } catch {
      value = null;
    }
    if (!res.ok) {
      if (res.status === 401 && onUnauthorized) onUnauthorized();
      const msg = value && typeof value.error === 'string' ? value.error : text || res.statusText;
      throw new ApiError(res.status, `${res.status}: ${msg}`);
    }
    return value;
  };
}

export const enc = encodeURIComponent;
