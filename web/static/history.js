// Shared by the therapy pages (patients, patient, session): requests with the
// CSRF token, formatting, and the profile forms' range hints and field errors.
// Everything from the controller is shown with textContent, never as HTML:
// names, notes and messages can contain anything.
'use strict';

window.Therapy = (function () {
  const $ = (id) => document.getElementById(id);
  const KMH_PER_MPH = 1.609344;

  const units = document.querySelector('meta[name="display-units"]').content || 'km/h';

  // ---- requests -------------------------------------------------------------------------

  function pageMessage(text) {
    const el = $('page-message');
    el.textContent = text || '';
    el.hidden = !text;
  }

  // The shared request, plus a page-wide notice for the answers every page treats alike.
  async function api(method, path, body) {
    const r = await window.Requests.send(method, path, body);
    const data = r.body;
    if (r.status === 401) {
      pageMessage('Not logged in (or the login expired): log in on the dashboard, then reload this page.');
    } else if (r.status === 409 && data.code === 'offline') {
      pageMessage('Controller offline: ' + (data.message || '') + '. Stored history cannot be read or changed now.');
    } else if (r.status === 503 && data.code === 'storage') {
      pageMessage('History storage fault: ' + (data.message || ''));
    }
    return r;
  }

  function explain(r) {
    if (r.ok) return r.body.message || 'ok';
    return r.body.message || ('refused (HTTP ' + r.status + ')');
  }

  function say(id, text, isError) {
    const el = $(id);
    el.textContent = text || '';
    el.classList.toggle('error', Boolean(isError));
  }

  // ---- building and formatting ----------------------------------------------------------

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function link(href, text) {
    const a = el('a', text);
    a.href = href;
    return a;
  }

  const pad = (n) => String(n).padStart(2, '0');

  function dateTime(wall) {
    if (wall === null || wall === undefined) return '--';
    const d = new Date(wall * 1000);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes());
  }

  function timeOfDay(wall) {
    if (wall === null || wall === undefined) return '--';
    const d = new Date(wall * 1000);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '--';
    const total = Math.round(seconds);
    return Math.floor(total / 60) + ':' + pad(total % 60);
  }

  function num(value, digits, unit) {
    if (value === null || value === undefined || !isFinite(value)) return '--';
    return Number(value).toFixed(digits) + (unit ? ' ' + unit : '');
  }

  // Minutes as given, to the hundredth: a suggested 8.75 min must not read as 8.8.
  function minutes(value) {
    if (value === null || value === undefined || !isFinite(value)) return '--';
    return String(Math.round(Number(value) * 100) / 100) + ' min';
  }

  function speed(kmh) {
    if (kmh === null || kmh === undefined || !isFinite(kmh)) return '--';
    return (units === 'mph' ? kmh / KMH_PER_MPH : kmh).toFixed(1) + ' ' + units;
  }

  function pain(before, after, flag) {
    const text = (before === null || before === undefined ? '--' : before) + ' → ' +
      (after === null || after === undefined ? '--' : after);
    const span = el('span', text, flag ? 'pain-flag' : '');
    if (flag) {
      span.append(' ', el('strong', '▲ worse', 'flag'));
      span.title = 'pain after is higher than before';
    }
    return span;
  }

  function suggestionText(s) {
    if (!s || s.duration_min === undefined) return 'next session: --';
    return 'next session: ' + minutes(s.duration_min) + (s.reason ? ' — ' + s.reason : '');
  }

  function todayText(t) {
    if (!t) return 'today: --';
    return 'today: ' + t.done + ' of ' + t.per_day + (t.per_day === 1 ? ' session' : ' sessions');
  }

  // ---- profile forms --------------------------------------------------------------------

  // The web layer names a field plainly, the controller as "[patient] field" (or section/key).
  function fieldOf(error) {
    if (error && error.key) return String(error.key);
    return String((error && error.field) || '').split(' ').pop();
  }

  function rangeText(f) {
    if (!f) return '';
    if (f.choices) return 'one of ' + f.choices.join(', ');
    if (f.min !== undefined && f.max !== undefined) {
      return (f.integer ? 'whole number ' : '') + f.min + ' to ' + f.max + (f.unit ? ' ' + f.unit : '');
    }
    if (f.max_len !== undefined) {
      const min = f.min_len !== undefined ? f.min_len : (f.pattern ? 1 : 0);
      return min + ' to ' + f.max_len + ' characters' + (f.pattern ? ': letters, digits, _ or -' : '');
    }
    return '';
  }

  function applyRanges(form, fields) {
    for (const [name, f] of Object.entries(fields || {})) {
      const input = form.elements[name];
      if (!input) continue;
      if (f.min !== undefined && input.type === 'number') input.min = f.min;
      if (f.max !== undefined && input.type === 'number') input.max = f.max;
      if (f.max_len !== undefined && input.maxLength !== undefined) input.maxLength = f.max_len;
      const hint = form.querySelector('[data-range-for="' + name + '"]');
      if (hint) hint.textContent = rangeText(f);
    }
  }

  // The fields are the form's named inputs, in the template's order: which fields a profile has
  // and what each takes is the controller's to say (its "fields" and its refusals), not a list here.
  function namedInputs(form) {
    return Array.from(form.elements).filter((input) => input.name);
  }

  function readForm(form) {
    const body = {};
    for (const input of namedInputs(form)) {
      const raw = input.value;
      if (input.type !== 'number') {
        // Free text (a textarea) keeps its spacing; a one-line entry is trimmed.
        body[input.name] = input.tagName === 'TEXTAREA' ? raw : raw.trim();
      } else if (raw.trim() !== '') {
        // Unparseable text goes as it is, so the 400 names the field; empty is left out ("required").
        body[input.name] = isFinite(Number(raw)) ? Number(raw) : raw;
      }
    }
    return body;
  }

  function fillForm(form, values) {
    for (const input of namedInputs(form)) {
      const value = values[input.name];
      if (value !== undefined && value !== null) input.value = value;
    }
  }

  function showErrors(form, list, errors, message) {
    list.replaceChildren();
    for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    for (const span of form.querySelectorAll('[data-error-for]')) span.textContent = '';
    const items = errors && errors.length ? errors : (message ? [{ message }] : []);
    for (const e of items) {
      const name = fieldOf(e);
      const input = name ? form.elements[name] : null;
      const span = name ? form.querySelector('[data-error-for="' + name + '"]') : null;
      if (input) input.setAttribute('aria-invalid', 'true');
      if (span) span.textContent = e.message;
      else list.appendChild(el('li', e.message));
    }
  }

  return {
    $, api, explain, say, el, link, dateTime, timeOfDay, duration, num, minutes, speed, pain, suggestionText, todayText,
    pageMessage, applyRanges, readForm, fillForm, showErrors, fieldOf, units,
  };
})();
