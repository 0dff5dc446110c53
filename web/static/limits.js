// The dashboard's "Limits" panel: the controller's limits with their ranges, and a form to change them.
// Status and login come from app.js ('dashboard:status', 'dashboard:login'); requests go through its api().
'use strict';

(function () {
  const _ = window.I18n.gettext;
  const $ = (id) => document.getElementById(id);
  const D = window.Dashboard;
  const api = D.api;
  const explain = D.explain;
  const say = D.say;
  const refreshEvents = D.refreshEvents;
  let loggedIn = !$('therapist').hidden;
  let currentLimits = null;
  let lastLimits = null;

  const limitsForm = $('limits-form');
  // The limits are the form's named inputs (the template's order and labels); their ranges come
  // from the controller's GET /api/limits, and it names any value it refuses.
  const LIMIT_FIELDS = Array.from(limitsForm.elements).filter((input) => input.name).map((input) => input.name);

  // Each input is described by its range hint and, while refused, by its own error next to it: the
  // template gives neither an id nor an error element, so they are made here once.
  for (const f of LIMIT_FIELDS) {
    const input = limitsForm.elements[f];
    const hint = limitsForm.querySelector('[data-range-for="' + f + '"]');
    if (hint && !hint.id) hint.id = 'limits-range-' + f;
    const error = document.createElement('span');
    error.className = 'field-error';
    error.id = 'limits-error-' + f;
    error.dataset.errorFor = f;
    (hint || input).after(error);
    if (hint) input.setAttribute('aria-describedby', hint.id);
  }

  // The label the therapist sees: the text of the <label> around the input, not of what it holds.
  function labelOf(input) {
    const label = input.labels && input.labels[0];
    if (!label) return input.name;
    const own = Array.from(label.childNodes).filter((n) => n.nodeType === Node.TEXT_NODE)
      .map((n) => n.textContent).join(' ').replace(/\s+/g, ' ').trim();
    return own || input.name;
  }

  // One range per limit: the API's "effective" (its own range within the installer's ceilings); from
  // "ranges" and "ceilings" when a dashboard older than that answers.
  function effectiveRanges(body) {
    if (body.effective) return body.effective;
    const ranges = body.ranges || {};
    const ceilings = body.ceilings || {};
    const out = {};
    for (const [f, r] of Object.entries(ranges)) {
      let min = r.min;
      let max = r.max;
      if (typeof ceilings['max_' + f] === 'number') max = Math.min(max, ceilings['max_' + f]);
      if (typeof ceilings['min_' + f] === 'number') min = Math.max(min, ceilings['min_' + f]);
      out[f] = { min, max: Math.max(min, max), unit: r.unit };
    }
    return out;
  }

  async function loadLimits(force) {
    if (!loggedIn) return;
    const r = await api('GET', '/api/limits');
    if (!r.ok) return;
    const dirty = LIMIT_FIELDS.some((f) => limitsForm.elements[f].dataset.dirty === '1');
    currentLimits = r.body.limits;
    const ranges = effectiveRanges(r.body);
    for (const f of LIMIT_FIELDS) {
      const input = limitsForm.elements[f];
      if (force || !dirty) {
        input.value = currentLimits[f];
        input.dataset.dirty = '0';
      }
      const range = ranges[f];
      if (range) {
        input.min = range.min;
        input.max = range.max;
      }
      const hint = limitsForm.querySelector('[data-range-for="' + f + '"]');
      if (!range) hint.textContent = '';
      else if (range.unit) hint.textContent = _('allowed {min} to {max} {unit}', range);
      else hint.textContent = _('allowed {min} to {max}', range);
    }
  }

  for (const f of LIMIT_FIELDS) {
    limitsForm.elements[f].addEventListener('input', (ev) => { ev.target.dataset.dirty = '1'; });
  }

  // The bare field name of an error: its "key", else the last word of "[limits] field".
  function fieldOf(error) {
    if (error && typeof error.key === 'string') return error.key;
    const field = String((error && error.field) || '');
    return field.startsWith('[') && !field.includes('] ') ? '' : field.split(' ').pop();
  }

  // Every error of one answer at once: in the list as "<label>: <message>", and each limit at fault
  // marked (aria-invalid) with its own message next to it (aria-describedby). The previous answer's
  // marks go first, so a fixed limit is clear after the next submit.
  function showLimitErrors(errors, message) {
    const list = $('limits-errors');
    list.replaceChildren();
    for (const f of LIMIT_FIELDS) {
      const input = limitsForm.elements[f];
      input.removeAttribute('aria-invalid');
      $('limits-error-' + f).textContent = '';
      const hint = limitsForm.querySelector('[data-range-for="' + f + '"]');
      if (hint) input.setAttribute('aria-describedby', hint.id);
      else input.removeAttribute('aria-describedby');
    }
    const items = errors && errors.length ? errors : (message ? [{ message }] : []);
    let first = null;
    for (const e of items) {
      const name = fieldOf(e);
      const text = String(e.message || '');
      const li = document.createElement('li');
      list.appendChild(li);
      if (!LIMIT_FIELDS.includes(name)) {
        li.textContent = name ? _('{field}: {message}', { field: name, message: text }) : text;
        continue;
      }
      const input = limitsForm.elements[name];
      li.textContent = _('{field}: {message}', { field: labelOf(input), message: text });
      input.setAttribute('aria-invalid', 'true');
      const span = $('limits-error-' + name);
      span.textContent = span.textContent ? span.textContent + '; ' + text : text;
      const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
      if (!ids.includes(span.id)) input.setAttribute('aria-describedby', ids.concat(span.id).join(' '));
      if (!first) first = input;
    }
    if (first) first.focus();
  }

  limitsForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const f of LIMIT_FIELDS) {
      const raw = limitsForm.elements[f].value.trim();
      // Unparseable text goes to the server as it is, so its 400 names the field.
      const value = raw !== '' && isFinite(Number(raw)) ? Number(raw) : raw;
      if (!currentLimits || value !== currentLimits[f]) body[f] = value;
    }
    if (Object.keys(body).length === 0) {
      showLimitErrors([], null);
      say('limits-message', _('nothing changed'));
      return;
    }
    const r = await api('PUT', '/api/limits', body);
    if (r.ok) {
      showLimitErrors([], null);
      say('limits-message', explain(r));
      await loadLimits(true);
    } else {
      say('limits-message', '');
      showLimitErrors(r.body.errors, explain(r));
    }
    refreshEvents();
  });

  document.addEventListener('dashboard:status', (ev) => {
    const limits = JSON.stringify(ev.detail.limits);
    if (lastLimits !== null && limits !== lastLimits) loadLimits(false);
    lastLimits = limits;
  });
  document.addEventListener('dashboard:login', (ev) => {
    loggedIn = ev.detail.loggedIn;
    if (loggedIn) loadLimits(true);
  });

  loadLimits(true);
})();
