// The page's words in its language. A script never builds a sentence itself: it calls
// _('English message', { name: value }) and gets the translation from the page's catalog
// (#script-catalog, filled by web/i18n.py from the scripts' own _() calls), with each {name}
// filled in. English is the source language: its catalog is empty and the message is the text.
// The language switch keeps the choice in this browser (a cookie the dashboard reads).
'use strict';

window.I18n = (function () {
  const node = document.getElementById('script-catalog');
  const catalog = node ? JSON.parse(node.textContent) : {};

  function gettext(message, values) {
    const text = Object.hasOwn(catalog, message) && catalog[message] ? catalog[message] : message;
    if (!values) return text;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (Object.hasOwn(values, name) ? String(values[name]) : whole));
  }

  // The switch: the chosen language in a year-long cookie, then the same page again without ?lang=.
  function wireSwitch() {
    const select = document.getElementById('language-switch');
    if (!select) return;
    select.addEventListener('change', () => {
      const secure = window.location.protocol === 'https:' ? '; Secure' : '';
      document.cookie = select.dataset.cookie + '=' + encodeURIComponent(select.value) +
        '; Path=/; Max-Age=31536000; SameSite=Strict' + secure;
      const url = new URL(window.location.href);
      url.searchParams.delete('lang');
      window.location.replace(url.toString());
    });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', wireSwitch);
  else wireSwitch();

  const language = document.documentElement.lang || 'en';
  // Dates and times as toLocale*String writes them: in the page's language, except in English, the source
  // language, where the browser's own format stays (undefined).
  const locale = language === 'en' ? undefined : language;
  return { gettext, language, locale };
})();
