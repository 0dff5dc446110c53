// /patients: the table of patients and the new-patient form.
'use strict';

(function () {
  const _ = window.I18n.gettext;
  const T = window.Therapy;
  const form = T.$('new-patient');
  const errors = T.$('new-patient-errors');

  function row(p) {
    const tr = document.createElement('tr');
    tr.dataset.patientId = p.patient_id;
    const idCell = document.createElement('td');
    idCell.appendChild(T.link('/patients/' + encodeURIComponent(p.patient_id), p.patient_id));
    tr.append(idCell, T.el('td', p.display_name), T.el('td', T.word('mode', p.mode)), T.el('td', T.speed(p.speed_cap_kmh)),
      T.el('td', T.minutes(p.target_min)), T.el('td', p.sessions_per_day),
      T.el('td', T.dateTime(p.updated_wall)));
    return tr;
  }

  async function load() {
    const r = await T.api('GET', '/api/patients');
    if (!r.ok) {
      if (r.status !== 401) T.pageMessage(_('Cannot list the patients: {reason}', { reason: T.explain(r) }));
      return;
    }
    const body = T.$('patients-table').tBodies[0];
    body.replaceChildren(...(r.body.patients || []).map(row));
    T.$('patients-empty').hidden = (r.body.patients || []).length > 0;
    T.applyRanges(form, r.body.fields);
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const sent = T.readForm(form);
    const r = await T.api('POST', '/api/patients', sent);
    const message = T.$('new-patient-message');
    message.replaceChildren();
    if (r.ok) {
      T.showErrors(form, errors, [], null);
      const id = r.body.patient.patient_id;
      message.append(_('Patient {id} added:', { id }), ' ',
        T.link('/patients/' + encodeURIComponent(id), _('open {id}', { id })));
      form.reset();
      load();
    } else {
      T.showErrors(form, errors, r.body.errors, T.explain(r));
    }
  });

  load();
})();
