// The dashboard's "Limits" panel: the controller's limits with their ranges, and a form to change them.
// Status and login come from app.js ('dashboard:status', 'dashboard:login'); requests go through its api().
'use strict';

(function () {
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

  async function loadLimits(force) {
    if (!loggedIn) return;
    const r = await api('GET', '/api/limits');
    if (!r.ok) return;
    const dirty = LIMIT_FIELDS.some((f) => limitsForm.elements[f].dataset.dirty === '1');
    currentLimits = r.body.limits;
    const ranges = r.body.ranges || {};
    const ceilings = r.body.ceilings || {};
    const ceilingFor = {
      reverse_cap_kmh: ['at most', ceilings.max_reverse_cap_kmh],
      forward_cap_kmh: ['at most', ceilings.max_forward_cap_kmh],
      base_stop_mm: ['at least', ceilings.min_base_stop_mm],
      warn_margin_mm: ['at least', ceilings.min_warn_margin_mm],
    };
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
      const parts = [];
      if (range) parts.push('allowed ' + range.min + ' to ' + range.max + ' ' + (range.unit || ''));
      if (ceilingFor[f][1] !== undefined) parts.push('installer ceiling: ' + ceilingFor[f][0] + ' ' + ceilingFor[f][1]);
      hint.textContent = parts.join('; ');
    }
  }

  for (const f of LIMIT_FIELDS) {
    limitsForm.elements[f].addEventListener('input', (ev) => { ev.target.dataset.dirty = '1'; });
  }

  function showLimitErrors(errors, message) {
    const list = $('limits-errors');
    list.replaceChildren();
    for (const f of LIMIT_FIELDS) limitsForm.elements[f].removeAttribute('aria-invalid');
    const items = errors && errors.length ? errors : (message ? [{ message }] : []);
    for (const e of items) {
      const li = document.createElement('li');
      li.textContent = e.message;
      list.appendChild(li);
      // The web layer names the field plainly, the controller as "[limits] field".
      const name = String(e.field || '').split(' ').pop();
      if (LIMIT_FIELDS.includes(name)) limitsForm.elements[name].setAttribute('aria-invalid', 'true');
    }
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
      say('limits-message', 'nothing changed');
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
