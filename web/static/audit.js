// /audit (an admin's): the audit trail, newest first, a page at a time ("Older rows" asks for the rows
// below the oldest shown, by id), filtered by time and account; the CSV link carries the same filters;
// and the chain's state from /api/audit/verify. Times are shown in this browser's local time with the
// stored ISO UTC value in the <time> element. Every value is shown with textContent, never as HTML:
// a row holds what a client sent.
'use strict';

(function () {
  const _ = window.I18n.gettext;
  const T = window.Therapy;
  const PAGE_ROWS = 100;
  const DETAIL_CHARS = 140;
  const form = T.$('audit-filters');
  const errors = T.$('audit-errors');
  const csv = T.$('audit-csv');
  const older = T.$('audit-older');
  const body = T.$('audit-table').tBodies[0];

  let filters = {};
  let oldestId = null;
  let shown = 0;

  // ---- filters --------------------------------------------------------------------------------

  // A datetime-local value ("2026-12-05T09:30") is the browser's local time: as ISO 8601 UTC for the API.
  function isoUtc(local) {
    const d = new Date(local);
    return isNaN(d.getTime()) ? null : d.toISOString();
  }

  // The form's filters as the API's query, or the errors (by key) that stop it being sent.
  function readFilters() {
    const out = {};
    const problems = [];
    for (const key of ['since', 'until']) {
      const raw = form.elements[key].value;
      if (!raw) continue;
      const iso = isoUtc(raw);
      if (iso) out[key] = iso;
      else problems.push({ key, message: _('a date and time') });
    }
    if (out.since && out.until && out.since >= out.until) {
      problems.push({ key: 'until', message: _('later than From') });
    }
    const user = form.elements.user.value.trim();
    if (user) out.user = user;
    return { out, problems };
  }

  function query(values) {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(values)) {
      if (value !== null && value !== undefined && value !== '') q.set(key, value);
    }
    return q.toString();
  }

  function updateCsv() {
    csv.href = '/api/audit.csv?' + query({ ...filters, limit: csv.dataset.maxRows });
  }

  // ---- rows -----------------------------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, '0');

  function localTime(iso) {
    const d = new Date(iso);
    const t = T.el('time', isNaN(d.getTime()) ? String(iso) : d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' +
      pad(d.getDate()) + ' ' + pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()));
    t.dateTime = String(iso);
    t.title = _('{time} (UTC)', { time: String(iso) });
    return t;
  }

  function valueText(v) {
    if (v === null || v === undefined) return 'null';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }

  // The detail as one short line: "key=value, key=value" for an object, the text itself for text.
  function summary(detail) {
    if (detail === null || detail === undefined) return '';
    let text;
    if (typeof detail === 'object' && !Array.isArray(detail)) {
      text = Object.entries(detail).map(([k, v]) => k + '=' + valueText(v)).join(', ');
    } else {
      text = valueText(detail);
    }
    return text.length > DETAIL_CHARS ? text.slice(0, DETAIL_CHARS - 1) + '…' : text;
  }

  function outcome(status) {
    const code = Number(status);
    const text = code < 400 ? _('{code} ok', { code }) : (code < 500 ? _('{code} refused', { code })
      : _('{code} failed', { code }));
    return T.el('td', text, code < 400 ? 'outcome-ok' : (code < 500 ? 'warn' : 'trip'));
  }

  function row(a) {
    const tr = document.createElement('tr');
    tr.dataset.auditId = a.id;
    const time = T.el('td');
    time.append(localTime(a.time));
    const who = T.el('td', a.actor ? a.actor : _('anonymous ({address})', { address: a.address }));
    who.title = _('from {address}', { address: a.address });
    const detail = T.el('td', summary(a.detail), 'detail');
    detail.title = a.detail === null || a.detail === undefined ? '' : valueText(a.detail);
    tr.append(T.el('td', a.id), time, who, T.el('td', a.role ? T.word('role', a.role) : '--'), T.el('td', a.action), T.el('td', a.target),
      outcome(a.outcome), detail);
    return tr;
  }

  async function load(more) {
    const values = { ...filters, limit: PAGE_ROWS };
    if (more && oldestId !== null) values.before_id = oldestId;
    older.disabled = true;
    const r = await T.api('GET', '/api/audit?' + query(values));
    older.disabled = false;
    if (!r.ok) {
      T.showErrors(form, errors, r.body.errors, _('Cannot read the audit trail: {reason}', { reason: T.explain(r) }));
      return;
    }
    T.showErrors(form, errors, [], null);
    const rows = r.body.rows || [];
    if (more) body.append(...rows.map(row));
    else body.replaceChildren(...rows.map(row));
    shown = (more ? shown : 0) + rows.length;
    if (rows.length) oldestId = rows[rows.length - 1].id;
    else if (!more) oldestId = null;
    T.$('audit-empty').hidden = shown > 0;
    // A full page may have more below it; a short one is the oldest.
    older.hidden = rows.length < PAGE_ROWS;
    if (!shown) T.$('audit-count').textContent = '';
    else if (older.hidden) T.$('audit-count').textContent = _('rows shown: {count}, the oldest included', { count: shown });
    else T.$('audit-count').textContent = _('rows shown: {count}', { count: shown });
  }

  async function verify() {
    const chain = T.$('audit-chain');
    const broken = T.$('audit-chain-broken');
    const r = await T.api('GET', '/api/audit/verify');
    if (!r.ok) {
      T.say('audit-chain', _('Cannot check the chain: {reason}', { reason: T.explain(r) }), true);
      return;
    }
    broken.hidden = r.body.intact;
    broken.textContent = r.body.intact ? '' : _('The audit chain is broken: {reason}', { reason: r.body.message });
    T.say('audit-chain', r.body.intact ? _('chain intact, rows: {count}', { count: r.body.rows }) : '', false);
    chain.title = r.body.intact ? r.body.message : '';
  }

  function apply() {
    const { out, problems } = readFilters();
    if (problems.length) {
      T.showErrors(form, errors, problems, null);
      return;
    }
    filters = out;
    oldestId = null;
    updateCsv();
    load(false);
    verify();
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    apply();
  });
  // Cleared: everyone, all times (after the reset has emptied the inputs).
  form.addEventListener('reset', () => setTimeout(apply, 0));
  older.addEventListener('click', () => load(true));

  apply();
})();
