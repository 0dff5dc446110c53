// /accounts (an admin's): the accounts table, each account's role, enabled state and password, and
// the new-account form. Each change is one PATCH /api/users/<name>; a refusal (the last enabled admin,
// disabling yourself, a short password) is shown next to the control it refuses and in the row's alert.
// Names come from people: shown with textContent only, never as HTML.
'use strict';

(function () {
  const _ = window.I18n.gettext;
  const T = window.Therapy;
  const head = T.$('accounts-head');
  const me = head.dataset.me || '';
  const passwordRange = _('{min} to {max} characters', { min: head.dataset.passwordMin, max: head.dataset.passwordMax });
  const form = T.$('new-account');
  const formErrors = T.$('new-account-errors');
  const isMe = (name) => String(name).toLowerCase() === me.toLowerCase();
  let rowCount = 0;

  // ---- one row per account ------------------------------------------------------------------

  function when(wall) {
    if (wall === null || wall === undefined) return T.el('span', _('never'), 'muted');
    const t = T.el('time', T.dateTime(wall));
    t.dateTime = new Date(wall * 1000).toISOString();
    t.title = t.dateTime;
    return t;
  }

  // A control's inline error: a span next to it, named by the refusal's key (role, enabled, password).
  function errorSpan(id, key) {
    const span = T.el('span', '', 'field-error');
    span.id = id + '-error';
    span.dataset.errorFor = key;
    return span;
  }

  function labelled(id, text) {
    const label = T.el('label', text, 'visually-hidden');
    label.htmlFor = id;
    return label;
  }

  function roleForm(tr, user, id) {
    const f = T.el('form', null, 'row-form');
    f.noValidate = true;
    const select = document.createElement('select');
    select.id = id + '-role';
    select.name = 'role';
    for (const role of ['therapist', 'admin']) {
      const option = T.el('option', T.word('role', role));
      option.value = role;
      select.append(option);
    }
    select.value = user.role;
    const button = T.el('button', _('Change role'));
    button.type = 'submit';
    f.append(labelled(select.id, _('Role of {name}', { name: user.name })), select, button, errorSpan(select.id, 'role'));
    f.addEventListener('submit', (ev) => {
      ev.preventDefault();
      change(tr, { role: select.value }, _('Role of {name} is now {role}.',
        { name: tr.dataset.accountName, role: T.word('role', select.value) }));
    });
    return f;
  }

  function enabledForm(tr, id) {
    const f = T.el('form', null, 'row-form');
    const button = T.el('button', '');
    button.type = 'submit';
    button.id = id + '-enabled';
    button.name = 'enabled';
    button.className = 'toggle-enabled';
    f.append(button, errorSpan(button.id, 'enabled'));
    f.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const enable = tr.dataset.enabled !== '1';
      const name = tr.dataset.accountName;
      change(tr, { enabled: enable }, enable ? _('{name} is enabled again.', { name })
        : _('{name} is disabled: their logins have ended.', { name }));
    });
    return f;
  }

  function passwordForm(tr, user, id) {
    const f = T.el('form', null, 'row-form');
    f.noValidate = true;
    if (isMe(user.name)) {
      // A new password set here would end this very login: your own goes through "My account".
      f.append(T.link('/account', _('Change your own password on My account')));
      return f;
    }
    const input = document.createElement('input');
    input.id = id + '-password';
    input.name = 'password';
    input.type = 'password';
    input.autocomplete = 'new-password';
    input.minLength = Number(head.dataset.passwordMin);
    input.maxLength = Number(head.dataset.passwordMax);
    input.placeholder = _('new password');
    const range = T.el('span', passwordRange, 'range');
    range.id = input.id + '-range';
    input.setAttribute('aria-describedby', range.id);
    const button = T.el('button', _('Set password'));
    button.type = 'submit';
    f.append(labelled(input.id, _('New password for {name} ({range})', { name: user.name, range: passwordRange })),
      input, button,
      range, errorSpan(input.id, 'password'));
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const ok = await change(tr, { password: input.value },
        _('New password set for {name}: their logins have ended.', { name: tr.dataset.accountName }));
      if (ok) input.value = '';
    });
    return f;
  }

  // The row's cells that show the stored account (kept in place after a change, so focus stays put).
  function fill(tr, user) {
    tr.dataset.accountName = user.name;
    tr.dataset.role = user.role;
    tr.dataset.enabled = user.enabled ? '1' : '0';
    tr.classList.toggle('account-disabled', !user.enabled);
    const cells = tr.cells;
    cells[1].textContent = T.word('role', user.role);
    cells[2].textContent = user.enabled ? _('enabled') : _('disabled');
    cells[3].replaceChildren(when(user.last_login));
    const toggle = tr.querySelector('button.toggle-enabled');
    toggle.textContent = user.enabled ? _('Disable') : _('Enable');
    toggle.setAttribute('aria-label', user.enabled ? _('Disable {name}', { name: user.name })
      : _('Enable {name}', { name: user.name }));
  }

  function row(user) {
    const id = 'account-' + (rowCount += 1);
    const tr = document.createElement('tr');
    const nameCell = T.el('td');
    nameCell.append(T.el('strong', user.name));
    if (isMe(user.name)) nameCell.append(' ', T.el('span', _('(you)'), 'muted'));
    const controls = T.el('td');
    const box = T.el('div', null, 'row-controls');
    box.append(roleForm(tr, user, id), enabledForm(tr, id), passwordForm(tr, user, id));
    const alert = T.el('p', '', 'row-message error');
    alert.setAttribute('role', 'alert');
    const status = T.el('p', '', 'row-message');
    status.setAttribute('role', 'status');
    controls.append(box, alert, status);
    tr.append(nameCell, T.el('td'), T.el('td'), T.el('td'), controls);
    fill(tr, user);
    return tr;
  }

  // ---- changes ------------------------------------------------------------------------------

  // Clear the row's refusal marks, then put each of this answer's errors next to its control (by its key);
  // an error no control owns (an account gone meanwhile) goes to the row's alert alone.
  function showRowErrors(tr, r) {
    for (const span of tr.querySelectorAll('[data-error-for]')) span.textContent = '';
    for (const control of tr.querySelectorAll('[aria-invalid]')) {
      control.removeAttribute('aria-invalid');
      const ids = (control.getAttribute('aria-describedby') || '').split(' ')
        .filter((i) => i && i !== control.id + '-error');
      if (ids.length) control.setAttribute('aria-describedby', ids.join(' '));
      else control.removeAttribute('aria-describedby');
    }
    const alert = tr.querySelector('.row-message[role="alert"]');
    alert.textContent = r ? _('Not changed: {reason}', { reason: T.explain(r) }) : '';
    if (!r) return;
    for (const e of r.body.errors || []) {
      const key = T.fieldOf(e);
      const span = key ? tr.querySelector('[data-error-for="' + key + '"]') : null;
      if (!span) continue;
      span.textContent = span.textContent ? span.textContent + '; ' + e.message : String(e.message || '');
      const control = tr.querySelector('[name="' + key + '"]');
      if (control) {
        control.setAttribute('aria-invalid', 'true');
        const ids = (control.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
        if (!ids.includes(span.id)) control.setAttribute('aria-describedby', ids.concat(span.id).join(' '));
      }
    }
  }

  async function change(tr, body, done) {
    const name = tr.dataset.accountName;
    const status = tr.querySelector('.row-message[role="status"]');
    status.textContent = '';
    const r = await T.api('PATCH', '/api/users/' + encodeURIComponent(name), body);
    if (!r.ok) {
      showRowErrors(tr, r);
      // The select shows what is stored, not the role that was refused.
      tr.querySelector('select[name="role"]').value = tr.dataset.role;
      return false;
    }
    showRowErrors(tr, null);
    fill(tr, r.body.user);
    status.textContent = done;
    if (isMe(name) && r.body.user.role !== 'admin') {
      // No longer an admin: the header drops the admin links, and this page can change nothing more.
      await window.Requests.refreshToken();
      T.pageMessage(_('You are a therapist now: only an admin may change accounts.'));
    }
    return true;
  }

  async function load() {
    const r = await T.api('GET', '/api/users');
    if (!r.ok) {
      if (r.status !== 401) T.pageMessage(_('Cannot list the accounts: {reason}', { reason: T.explain(r) }));
      return;
    }
    const users = r.body.users || [];
    T.$('accounts-table').tBodies[0].replaceChildren(...users.map(row));
    T.$('accounts-empty').hidden = users.length > 0;
  }

  // ---- the new account ----------------------------------------------------------------------

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    // By hand, not T.readForm: a password keeps its spaces.
    const sent = { name: form.elements.name.value.trim(), role: form.elements.role.value,
      password: form.elements.password.value };
    const r = await T.api('POST', '/api/users', sent);
    const message = T.$('new-account-message');
    message.textContent = '';
    if (r.ok) {
      T.showErrors(form, formErrors, [], null);
      message.textContent = _('Account {name} ({role}) added.',
        { name: r.body.user.name, role: T.word('role', r.body.user.role) });
      form.reset();
      load();
    } else {
      T.showErrors(form, formErrors, r.body.errors, T.explain(r));
    }
  });

  load();
})();
