// /account (anyone logged in): change your own password. The new password is typed twice and the two are
// compared here before anything is sent; the dashboard checks the present one and the new one's length.
'use strict';

(function () {
  const _ = window.I18n.gettext;
  const T = window.Therapy;
  const form = T.$('own-password');
  const errors = T.$('own-password-errors');
  const message = T.$('own-password-message');

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    message.textContent = '';
    const current = form.elements.current_password.value;
    const fresh = form.elements.new_password.value;
    if (fresh !== form.elements.new_password_again.value) {
      T.showErrors(form, errors, [{ key: 'new_password_again', message: _('not the same as the new password') }],
        null);
      return;
    }
    const r = await T.api('POST', '/api/account/password', { current_password: current, new_password: fresh });
    if (r.ok) {
      T.showErrors(form, errors, [], null);
      form.elements.current_password.value = '';
      form.elements.new_password.value = '';
      form.elements.new_password_again.value = '';
      message.textContent = _('Password changed. Your other logins have ended; this one goes on.');
    } else {
      T.showErrors(form, errors, r.body.errors, T.explain(r));
    }
  });
})();
