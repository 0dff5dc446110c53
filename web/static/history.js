// Shared by the therapy pages (patients, patient, session): requests with the
// CSRF token, formatting, and the profile forms' range hints and field errors.
// Everything from the controller is shown with textContent, never as HTML:
// names, notes and messages can contain anything.
'use strict';

window.Therapy = (function () {
  const _ = window.I18n.gettext;
  const word = window.Header.word;
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
      pageMessage(_('Not logged in (or the login expired): log in on the dashboard, then reload this page.'));
    } else if (r.status === 409 && data.code === 'offline') {
      pageMessage(_('Controller offline: {reason}. Stored history cannot be read or changed now.',
        { reason: data.message || '' }));
    } else if (r.status === 503 && data.code === 'storage') {
      pageMessage(_('History storage fault: {reason}', { reason: data.message || '' }));
    }
    return r;
  }

  function explain(r) {
    if (r.ok) return r.body.message || _('ok');
    return r.body.message || _('refused (HTTP {status})', { status: r.status });
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
    return _('{minutes} min', { minutes: Math.round(Number(value) * 100) / 100 });
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
      span.append(' ', el('strong', _('▲ worse'), 'flag'));
      span.title = _('pain after is higher than before');
    }
    return span;
  }

  function suggestionText(s) {
    if (!s || s.duration_min === undefined) return _('next session: --');
    if (s.reason) return _('next session: {minutes} — {reason}', { minutes: minutes(s.duration_min), reason: s.reason });
    return _('next session: {minutes}', { minutes: minutes(s.duration_min) });
  }

  function todayText(t) {
    if (!t) return _('sessions today: --');
    // More than planned reads as such, never "3 of 2".
    if (t.done > t.per_day) return _('sessions today: {done} ({planned} planned)', { done: t.done, planned: t.per_day });
    return _('sessions today: {done} of {planned}', { done: t.done, planned: t.per_day });
  }

  // ---- profile forms --------------------------------------------------------------------

  // The bare field name of an error: its "key" (the controller's and the web layer's errors carry it),
  // else the last word of its "field" ("[patient] base_stop_mm", or "notes" from the web layer).
  function fieldOf(error) {
    if (error && typeof error.key === 'string') return error.key;
    const field = String((error && error.field) || '');
    return field.startsWith('[') && !field.includes('] ') ? '' : field.split(' ').pop();
  }

  // The label a therapist sees next to an input: a <label for> or the <label> around it, without the
  // text of the elements inside it (the input, its range hint, its error).
  function labelOf(input) {
    const label = input.labels && input.labels[0];
    if (!label) return input.name;
    const own = Array.from(label.childNodes).filter((n) => n.nodeType === Node.TEXT_NODE)
      .map((n) => n.textContent).join(' ').replace(/\s+/g, ' ').trim();
    return own || label.textContent.replace(/\s+/g, ' ').trim() || input.name;
  }

  function rangeText(f, mode) {
    if (!f) return '';
    // A choice that is a mode is named as the page names modes; any other as it is.
    if (f.choices) return _('one of {choices}', { choices: f.choices.map((c) => word('mode', c)).join(', ') });
    const r = rangeIn(f, mode);
    if (r.min !== undefined && r.max !== undefined) {
      // Minutes are named as the page names them everywhere else; any other unit (mm, km/h) as it is.
      const values = { min: r.min, max: r.max, unit: f.unit === 'min' ? _('min') : f.unit, mode: word('mode', r.mode) };
      return RANGES[(f.integer ? 'i' : '') + (f.unit ? 'u' : '') + (r.mode ? 'm' : '')](values);
    }
    if (f.max_len !== undefined) {
      const values = { min: f.min_len !== undefined ? f.min_len : (f.pattern ? 1 : 0), max: f.max_len };
      return f.pattern ? _('{min} to {max} characters: letters, digits, _ or -', values)
        : _('{min} to {max} characters', values);
    }
    return '';
  }

  // A number's range: a whole number or not, with a unit or not, for one mode or any; each a whole phrase.
  const RANGES = {
    '': (v) => _('{min} to {max}', v),
    u: (v) => _('{min} to {max} {unit}', v),
    m: (v) => _('{min} to {max} in {mode} mode', v),
    um: (v) => _('{min} to {max} {unit} in {mode} mode', v),
    i: (v) => _('whole number {min} to {max}', v),
    iu: (v) => _('whole number {min} to {max} {unit}', v),
    im: (v) => _('whole number {min} to {max} in {mode} mode', v),
    ium: (v) => _('whole number {min} to {max} {unit} in {mode} mode', v),
  };

  // A field's one range: the speed cap's depends on the mode chosen (the controller's "by_mode"); the
  // mode is named only when the modes' ranges differ.
  function rangeIn(f, mode) {
    const byMode = f.by_mode || {};
    const own = byMode[mode];
    if (!own) return { min: f.min, max: f.max };
    const differ = Object.values(byMode).some((r) => r.min !== own.min || r.max !== own.max);
    return { min: own.min, max: own.max, mode: differ ? mode : '' };
  }

  function applyRanges(form, fields) {
    form.fieldRanges = fields || {};
    const mode = form.elements.mode ? form.elements.mode.value : '';
    for (const [name, f] of Object.entries(form.fieldRanges)) {
      const input = form.elements[name];
      if (!input) continue;
      const r = rangeIn(f, mode);
      if (r.min !== undefined && input.type === 'number') input.min = r.min;
      if (r.max !== undefined && input.type === 'number') input.max = r.max;
      if (f.max_len !== undefined && input.maxLength !== undefined) input.maxLength = f.max_len;
      const hint = form.querySelector('[data-range-for="' + name + '"]');
      if (hint) hint.textContent = rangeText(f, mode);
    }
    if (form.elements.mode && !form.dataset.rangesFollowMode) {
      // The cap's range is the mode's: shown anew when the mode changes (or the form is filled or reset).
      form.dataset.rangesFollowMode = '1';
      const again = () => applyRanges(form, form.fieldRanges);
      form.elements.mode.addEventListener('change', again);
      form.addEventListener('reset', () => setTimeout(again, 0));
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
    if (form.fieldRanges) applyRanges(form, form.fieldRanges);
  }

  // The inline error next to an input: the template's [data-error-for] span, given an id if it has none
  // (the dashboard's limits form has no such span: limits.js makes its own the same way).
  function errorSpanOf(form, input) {
    const span = form.querySelector('[data-error-for="' + input.name + '"]');
    if (span && !span.id) span.id = (form.id || 'form') + '-' + input.name + '-error';
    return span;
  }

  // Every error of one answer at once: each in the list as "<label>: <message>", and each input at
  // fault marked (aria-invalid) with its own message next to it (aria-describedby). The marks of the
  // previous answer go first, so a fixed field is clear after the next submit.
  function showErrors(form, list, errors, message) {
    list.replaceChildren();
    for (const input of namedInputs(form)) {
      input.removeAttribute('aria-invalid');
      const span = errorSpanOf(form, input);
      if (span) {
        span.textContent = '';
        const rest = (input.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && id !== span.id);
        if (rest.length) input.setAttribute('aria-describedby', rest.join(' '));
        else input.removeAttribute('aria-describedby');
      }
    }
    const items = errors && errors.length ? errors : (message ? [{ message }] : []);
    let first = null;
    for (const e of items) {
      const name = fieldOf(e);
      const input = name && form.elements[name] && form.elements[name].name === name ? form.elements[name] : null;
      const text = String(e.message || '');
      if (!input) {
        list.appendChild(el('li', name ? _('{field}: {message}', { field: name, message: text }) : text));
        continue;
      }
      list.appendChild(el('li', _('{field}: {message}', { field: labelOf(input), message: text })));
      input.setAttribute('aria-invalid', 'true');
      const span = errorSpanOf(form, input);
      if (span) {
        span.textContent = span.textContent ? span.textContent + '; ' + text : text;
        const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
        if (!ids.includes(span.id)) input.setAttribute('aria-describedby', ids.concat(span.id).join(' '));
      }
      if (!first) first = input;
    }
    if (first) first.focus();
  }

  return {
    $, _, word, api, explain, say, el, link, dateTime, timeOfDay, duration, num, minutes, speed, pain, suggestionText, todayText,
    pageMessage, applyRanges, readForm, fillForm, showErrors, fieldOf, labelOf, units,
  };
})();
