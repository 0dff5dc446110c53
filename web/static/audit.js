// /audit (an admin's): the audit trail, newest first, a page at a time ("Older rows" asks for the rows
// below the oldest shown, by id), filtered by time and account; the CSV link carries the same filters;
// and the chain's state from /api/audit/verify. Times are shown in this browser's local time with the
// stored ISO UTC value in the <time> element. Every value is shown with textContent, never as HTML:
// a row holds what a client sent.
'use strict';

(function () {
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
      else problems.push({ key, message: 'a date and time' });
    }
    if (out.since && out.until && out.since >= out.until) {
      problems.push({ key: 'until', message: 'later than From' });
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
    t.title = String(iso) + ' (UTC)';
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
    const word = code < 400 ? 'ok' : (code < 500 ? 'refused' : 'failed');
    return T.el('td', code + ' ' + word, code < 400 ? 'outcome-ok' : (code < 500 ? 'warn' : 'trip'));
  }

  function row(a) {
    const tr = document.createElement('tr');
    tr.dataset.auditId = a.id;
    const time = T.el('td');
    time.append(localTime(a.time));
    const who = T.el('td', a.actor ? a.actor : 'anonymous (' + a.address + ')');
    who.title = 'from ' + a.address;
    const detail = T.el('td', summary(a.detail), 'detail');
    detail.title = a.detail === null || a.detail === undefined ? '' : valueText(a.detail);
    tr.append(T.el('td', a.id), time, who, T.el('td', a.role || '--'), T.el('td', a.action), T.el('td', a.target),
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
      T.showErrors(form, errors, r.body.errors, 'Cannot read the audit trail: ' + T.explain(r));
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
    T.$('audit-count').textContent = shown ? shown + (shown === 1 ? ' row' : ' rows') + ' shown' +
      (older.hidden ? ', the oldest included' : '') : '';
  }

  async function verify() {
    const chain = T.$('audit-chain');
    const broken = T.$('audit-chain-broken');
    const r = await T.api('GET', '/api/audit/verify');
    if (!r.ok) {
      T.say('audit-chain', 'Cannot check the chain: ' + T.explain(r), true);
      return;
    }
    broken.hidden = r.body.intact;
    broken.textContent = r.body.intact ? '' : 'The audit chain is broken: ' + r.body.message;
    T.say('audit-chain', r.body.intact ? 'chain intact, ' + r.body.rows + (r.body.rows === 1 ? ' row' : ' rows')
      : '', false);
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
