// JSON requests to the dashboard's own API, shared by every page. The CSRF token
// travels in X-CSRFToken; when it went stale (a new login session, a restarted
// dashboard) a fresh one is fetched and the request is tried once more.
'use strict';

window.Requests = (function () {
  const _ = window.I18n.gettext;
  let csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  // Called with each /api/session body, in the order they were added (the header's, then the page's).
  const onRefresh = [];

  // The login state and a fresh token (GET /api/session); null when the dashboard does not answer.
  async function refreshToken() {
    try {
      const resp = await fetch('/api/session', { headers: { Accept: 'application/json' },
        credentials: 'same-origin', cache: 'no-store' });
      if (!resp.ok) return null;
      const data = await resp.json();
      csrfToken = data.csrf_token;
      for (const fn of onRefresh) fn(data);
      return data;
    } catch (err) {
      return null;
    }
  }

  // One request; resolves to { ok, status, body } and never rejects.
  async function send(method, path, body, retryCsrf = true) {
    const opts = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') opts.headers['X-CSRFToken'] = csrfToken;
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (err) {
      return { ok: false, status: 0, body: { code: 'network', message: _('dashboard not reachable'), errors: [] } };
    }
    let data;
    try {
      data = await resp.json();
    } catch (err) {
      data = { message: resp.statusText || ('HTTP ' + resp.status), errors: [] };
    }
    if (resp.status === 403 && data && data.code === 'csrf' && retryCsrf) {
      await refreshToken();
      return send(method, path, body, false);
    }
    return { ok: resp.ok, status: resp.status, body: data || {} };
  }

  return {
    send,
    refreshToken,
    // A login or logout answers with the token of the new session.
    setToken(token) { if (token) csrfToken = token; },
    // Called with the /api/session body after every token refresh (the page updates its login view);
    // each page part that asks is called.
    onSessionRefresh(fn) { onRefresh.push(fn); },
  };
})();
