"""The doctor's dashboard check: the TLS certificate and key the dashboard serves with.

It reads the files with the dashboard's own reader (``controller/certificate.py``),
so a PASS here means the dashboard will load them. The PASS line carries the
SHA-256 fingerprint a therapist compares once on each tablet.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
import pwd
import stat

from controller.certificate import CertificateError, read_certificate, server_context
from controller.config import Config
from controller.doctor.context import WEB_USER, Report

CHECK = "dashboard certificate"
#: Fewer days left than this and the PASS line says to renew.
RENEW_WITHIN_DAYS = 30
GENERATE = "sudo treadmill-safety tls-cert --config <this config>"


def _owner(st: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group} {stat.S_IMODE(st.st_mode):04o}"


def web_user_may_read(st: os.stat_result, user: str = WEB_USER) -> bool | None:
    """Whether the dashboard's user may read a file with this owner and mode; None if there is no such user."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    if st.st_uid == entry.pw_uid:
        return bool(st.st_mode & stat.S_IRUSR)
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IRGRP)
    return bool(st.st_mode & stat.S_IROTH)


def check_certificate(cfg: Config, report: Report, now: dt.datetime | None = None) -> None:
    """PASS with the names, expiry and SHA-256 fingerprint; FAIL with the fix when the dashboard could not serve."""
    cert, key = cfg.web.tls_cert, cfg.web.tls_key
    if not cert:
        report.fail(CHECK, "[web] tls_cert and tls_key are empty: the dashboard serves plain HTTP, and passwords "
                           "cross the LAN readable",
                    f"generate a self-signed certificate with `{GENERATE}`, or set [web] tls_cert and tls_key "
                    "to the clinic's certificate and key")
        return
    try:
        info = read_certificate(cert)
    except CertificateError as exc:
        report.fail(CHECK, str(exc), f"check [web] tls_cert, or generate a self-signed certificate: `{GENERATE}`")
        return
    now = now or dt.datetime.now(dt.timezone.utc)
    renew = ("install the clinic's renewed certificate" if not info.self_signed
             else f"make a new one with `{GENERATE} --force`, then check its fingerprint on each tablet again")
    if now >= info.not_after:
        report.fail(CHECK, f"{cert} expired on {info.not_after:%Y-%m-%d}: browsers refuse it", renew)
        return
    if now < info.not_before:
        report.fail(CHECK, f"{cert} is valid only from {info.not_before:%Y-%m-%d %H:%M} UTC, and this Pi's clock "
                           f"says {now:%Y-%m-%d %H:%M} UTC",
                    "set the clock (a Pi has no clock of its own: give it an NTP server on the LAN, timedatectl)")
        return
    fix_mode = f"sudo chown root:{WEB_USER} {key} && sudo chmod 0640 {key}"
    try:
        key_stat = os.stat(key)
    except OSError as exc:
        report.fail(CHECK, f"private key {key} cannot be read: {exc.strerror or exc}",
                    f"check [web] tls_key, or generate a new pair: `{GENERATE} --force`")
        return
    if key_stat.st_mode & (stat.S_IRWXO | stat.S_IWGRP):
        report.fail(CHECK, f"private key {key} is {_owner(key_stat)}: other users of this Pi may read or change it",
                    fix_mode)
        return
    if web_user_may_read(key_stat) is False:
        report.fail(CHECK, f"private key {key} is {_owner(key_stat)}: the dashboard's user {WEB_USER} cannot read it",
                    fix_mode)
        return
    if os.access(key, os.R_OK):
        try:
            server_context(cert, key)
        except CertificateError as exc:
            report.fail(CHECK, str(exc), f"set [web] tls_key to the certificate's own key, or make a new pair: "
                                         f"`{GENERATE} --force`")
            return
        key_note = f"key {key} ({_owner(key_stat)}) matches"
    else:
        key_note = (f"key {key} ({_owner(key_stat)}) not matched: this user cannot read it (the doctor run "
                    "with sudo checks it)")
    days_left = (info.not_after - now).days
    expiry = f"valid until {info.not_after:%Y-%m-%d} ({days_left} days"
    expiry += f"; renew now: {renew})" if days_left < RENEW_WITHIN_DAYS else ")"
    issuer = "self-signed: check this fingerprint once on each tablet" if info.self_signed else "issued by a CA"
    report.ok(CHECK, f"{cert} for {', '.join(info.names) or '(no names)'}; {expiry}; {issuer}; "
                     f"SHA-256 {info.fingerprint}; {key_note}")
