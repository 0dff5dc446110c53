#!/usr/bin/env bash
# Install (or uninstall) treadmill-safety as four systemd services on a Raspberry Pi:
# the controller, the dashboard, the voice and the replicator. The replicator (it ships
# this treadmill's history to the clinic's PostgreSQL server) is installed always but
# enabled only when the config's [clinic] treadmill_id is set (README "Clinic with
# several treadmills").
#
#   sudo make install                 # = sudo systemd/install.sh
#   sudo make uninstall               # = sudo systemd/install.sh --uninstall
#   DESTDIR=/tmp/root systemd/install.sh   # stage the files under /tmp/root only
#
# Safe to run again (an upgrade is the same command). It never overwrites
# /etc/treadmill-safety/config.toml and never touches the state directories'
# contents. It enables the units but does not start them: run
#   treadmill-safety check-config /etc/treadmill-safety/config.toml
#   cd /tmp && sudo -u treadmill treadmill-safety doctor --config /etc/treadmill-safety/config.toml
# first, then systemctl start (README "Deployment on a Raspberry Pi"). For a clinic's
# treadmill it checks that [clinic] password_file (/etc/treadmill-safety/clinic-password)
# is root:treadmill-web 0640, without reading it, and prints how to check the connection:
#   sudo -u treadmill-web treadmill-safety clinic status --config /etc/treadmill-safety/config.toml
# --uninstall stops, disables and removes all four units.
#
# With DESTDIR set, files go under $DESTDIR, and what needs the real system
# (useradd, pip, tls-cert, the voice check, systemctl, udevadm, chown) is printed, not done; no root needed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
DESTDIR="${DESTDIR:-}"
DESTDIR="${DESTDIR%/}"
PYTHON="${PYTHON:-python3}"

PREFIX=/opt/treadmill-safety
CONFIG_DIR=/etc/treadmill-safety
UNIT_DIR=/etc/systemd/system
UDEV_DIR=/etc/udev/rules.d
UNITS=(treadmill-controller.service treadmill-dashboard.service treadmill-voice.service)
REPLICATOR=treadmill-replicator.service   # runs as $WEB_USER; enabled only for a clinic's treadmill
ALL_UNITS=("${UNITS[@]}" "$REPLICATOR")
CLINIC_ID=""                  # [clinic] treadmill_id of the installed config, read by setup_replicator
RULES=99-treadmill-safety.rules
LOCK=requirements-pi.lock     # the base dependencies and the pi extra, pinned with hashes
CTL_USER=treadmill            # runs the controller; primary group treadmill
WEB_USER=treadmill-web        # runs the dashboard and the replicator; a member of group treadmill
VOICE_USER=treadmill-voice    # runs the voice; the other member of group treadmill, and of audio
STATE_DIRS=("/var/lib/treadmill-safety:$CTL_USER" "/var/lib/treadmill-dashboard:$WEB_USER")
CLINIC_PASSWORD=$CONFIG_DIR/clinic-password   # the example's place for [clinic] password_file

# The comment block under the shebang.
usage() {
    sed -n '2,/^[^#]/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

say() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

# A command that changes the real system: printed instead when DESTDIR is set.
run() {
    if [[ -n "$DESTDIR" ]]; then
        say "  (DESTDIR set) would run:$(printf ' %q' "$@")"
    else
        "$@"
    fi
}

ensure_group() {
    if getent group "$1" >/dev/null; then
        return 0
    fi
    run groupadd --system "$1"
}

# ensure_user NAME PRIMARY_GROUP SUPPLEMENTARY_GROUPS(comma-separated) COMMENT
ensure_user() {
    local name=$1 group=$2 groups=$3 comment=$4
    ensure_group "$group"
    local g
    for g in ${groups//,/ }; do ensure_group "$g"; done
    if getent passwd "$name" >/dev/null; then
        run usermod --append --groups "$groups" "$name"
    else
        run useradd --system --gid "$group" --groups "$groups" --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin --comment "$comment" "$name"
    fi
}

check_i2c() {
    if [[ -e /dev/i2c-1 ]]; then
        say "I2C: /dev/i2c-1 present."
        return 0
    fi
    if command -v raspi-config >/dev/null && [[ "$(raspi-config nonint get_i2c 2>/dev/null || true)" == 0 ]]; then
        say "I2C: enabled in raspi-config (/dev/i2c-1 appears after a reboot)."
        return 0
    fi
    warn "I2C does not look enabled (no /dev/i2c-1). Enable it, then reboot:
    sudo raspi-config nonint do_i2c 0
  or add this line to /boot/firmware/config.txt (/boot/config.txt before Bookworm):
    dtparam=i2c_arm=on"
}

check_socket_group() {
    # Only the dashboard's and the voice's users may be in group treadmill: its members can drive the
    # controller's API.
    local members
    members="$(getent group "$CTL_USER" | cut -d: -f4)" || return 0
    local m
    for m in ${members//,/ }; do
        if [[ "$m" != "$WEB_USER" && "$m" != "$VOICE_USER" ]]; then
            warn "user '$m' is in group $CTL_USER and can therefore use the controller's socket;" \
                 "remove it with: gpasswd -d $m $CTL_USER"
        fi
    done
}

# [SECTION] KEY of the installed config ("" when unset, or when the file does not parse:
# check-config names the problem).
config_option() {
    "$PYTHON" - "$DESTDIR$CONFIG_DIR/config.toml" "$1" "$2" 2>/dev/null <<'PY' || true
import sys, tomllib
with open(sys.argv[1], "rb") as fh:
    value = tomllib.load(fh).get(sys.argv[2], {}).get(sys.argv[3], "")
print(value if isinstance(value, str) else "")
PY
}

web_option() { config_option web "$1"; }

# The dashboard's HTTPS certificate: the clinic's own where the config names one that
# exists (kept as it is), otherwise a self-signed one for this Pi's host name and LAN
# addresses, made by treadmill-safety tls-cert. Its key: root's, readable by the
# dashboard's group only.
install_certificate() {
    local cert key
    cert="$(web_option tls_cert)"
    key="$(web_option tls_key)"
    if [[ -z "$cert" || -z "$key" ]]; then
        warn "[web] tls_cert and tls_key are not set in $CONFIG_DIR/config.toml: the dashboard would serve
  plain HTTP. Add these two lines to its [web] section, then run this again:
    tls_cert = \"$CONFIG_DIR/tls/dashboard.crt\"
    tls_key = \"$CONFIG_DIR/tls/dashboard.key\""
        return 0
    fi
    if [[ -e "$DESTDIR$cert" ]]; then
        say "Certificate: kept the existing $cert (never overwritten); doctor prints its fingerprint."
        return 0
    fi
    say "Certificate: none at $cert; generating a self-signed one for this Pi's names and addresses."
    install -d -m 0755 "$DESTDIR$(dirname "$cert")" "$DESTDIR$(dirname "$key")"
    if ! run "$PREFIX/bin/treadmill-safety" tls-cert --config "$CONFIG_DIR/config.toml"; then
        warn "no certificate was made (see above); after fixing the config run:
    sudo $PREFIX/bin/treadmill-safety tls-cert --config $CONFIG_DIR/config.toml
    sudo chown root:$WEB_USER $key && sudo chmod 0640 $key"
        return 0
    fi
    run chown "root:$WEB_USER" "$key"
    run chmod 0640 "$key"
    say "  Check its SHA-256 fingerprint (above; doctor prints it too) once on each tablet: the browser
  warns at the first visit; open the certificate's details, compare, and accept only if they match. A new host name
  or address needs a new certificate: sudo $PREFIX/bin/treadmill-safety tls-cert --force
  --config $CONFIG_DIR/config.toml (README: The dashboard's certificate)."
}

# The voice: espeak-ng and aplay come from Debian (nothing is downloaded, at install or at run
# time); every prompt must render in the configured language (treadmill-safety voice --say-all).
check_voice() {
    if [[ -n "$DESTDIR" ]]; then
        say "  (DESTDIR set) would run: $PREFIX/bin/treadmill-safety voice --say-all --wav-dir (a temporary directory) --config $CONFIG_DIR/config.toml"
        return 0
    fi
    local missing=() entry
    for entry in espeak-ng:espeak-ng aplay:alsa-utils; do
        command -v "${entry%%:*}" >/dev/null || missing+=("${entry##*:}")
    done
    if ((${#missing[@]})); then
        warn "the voice needs ${missing[*]} from Debian: sudo apt-get install -y ${missing[*]}
  then check it: $PREFIX/bin/treadmill-safety voice --say-all --wav-dir /tmp/prompts --config $CONFIG_DIR/config.toml"
        return 0
    fi
    local dir
    dir="$(mktemp -d)"
    if "$PREFIX/bin/treadmill-safety" voice --say-all --wav-dir "$dir" --config "$CONFIG_DIR/config.toml" >/dev/null; then
        say "Voice: every prompt renders in the configured language (espeak-ng)."
    else
        warn "the voice cannot render its prompts (see above); after fixing it, check with:
    $PREFIX/bin/treadmill-safety voice --say-all --wav-dir /tmp/prompts --config $CONFIG_DIR/config.toml"
    fi
    rm -rf "$dir"
}

# The replicator: enabled for a treadmill of a clinic ([clinic] treadmill_id set), otherwise
# left disabled (it would only exit 2). Says what the clinic's set-up still needs; never reads
# the password.
setup_replicator() {
    CLINIC_ID="$(config_option clinic treadmill_id)"
    if [[ -z "$CLINIC_ID" ]]; then
        if [[ -z "$DESTDIR" ]] && systemctl is-enabled --quiet "$REPLICATOR" 2>/dev/null; then
            run systemctl disable "$REPLICATOR"
        fi
        say "Clinic record: none ([clinic] treadmill_id is empty): this treadmill keeps its history on its own,
  and $REPLICATOR is installed but left disabled. To join the clinic's record later
  (README \"Clinic with several treadmills\"): set [clinic] treadmill_id and dsn in $CONFIG_DIR/config.toml,
  put the password in $CLINIC_PASSWORD (root:$WEB_USER 0640), then run this again, or:
    sudo systemctl enable --now $REPLICATOR"
        return 0
    fi
    say "Clinic record: this is treadmill \"$CLINIC_ID\"; $REPLICATOR is enabled (it runs as $WEB_USER)."
    run systemctl enable "$REPLICATOR"

    local password_file
    password_file="$(config_option clinic password_file)"
    if [[ -z "$password_file" ]]; then
        say "  [clinic] password_file is empty: libpq finds the password elsewhere, or a client certificate
  ([clinic] sslcert, sslkey) logs in. The usual place is password_file = \"$CLINIC_PASSWORD\"."
    elif [[ ! -e "$DESTDIR$password_file" ]]; then
        warn "[clinic] password_file $password_file does not exist. Make it, readable by the dashboard's
  and the replicator's group only, and write this treadmill's role's password in it, alone on its line:
    sudo install -m 0640 -o root -g $WEB_USER /dev/null $password_file
    sudoedit $password_file"
    elif [[ -z "$DESTDIR" && "$(stat -c '%U:%G %a' "$password_file")" != "root:$WEB_USER 640" ]]; then
        warn "[clinic] password_file $password_file is $(stat -c '%U:%G %a' "$password_file"); make it
  root:$WEB_USER 0640 (the dashboard and the replicator read it, nobody else):
    sudo chown root:$WEB_USER $password_file && sudo chmod 0640 $password_file"
    else
        say "  Password file: $password_file present${DESTDIR:+ (its owner and mode are checked without DESTDIR)}."
    fi

    local sslmode sslrootcert
    sslmode="$(config_option clinic sslmode)"
    sslrootcert="$(config_option clinic sslrootcert)"
    if [[ "${sslmode:-verify-full}" == verify-* && -z "$sslrootcert" ]]; then
        warn "[clinic] sslrootcert is empty with sslmode ${sslmode:-verify-full}: libpq would look for
  ~/.postgresql/root.crt, which $WEB_USER has not got. Copy the certificate of the CA that signed the
  server's certificate to, for example, $CONFIG_DIR/clinic-ca.crt (mode 0644) and name it there."
    elif [[ -n "$sslrootcert" && ! -e "$DESTDIR$sslrootcert" ]]; then
        warn "[clinic] sslrootcert $sslrootcert does not exist: copy the clinic CA's certificate there (mode 0644)."
    fi
    say "  Check the connection as the replicator's user (the schema version, the server's name):
    sudo -u $WEB_USER $PREFIX/bin/treadmill-safety clinic status --config $CONFIG_DIR/config.toml"
}

install_venv() {
    if [[ -n "$DESTDIR" ]]; then
        say "  (DESTDIR set) would run: $PYTHON -m venv $PREFIX"
        say "  (DESTDIR set) would run: $PREFIX/bin/pip install --require-hashes -r $REPO/$LOCK"
        say "  (DESTDIR set) would run: $PREFIX/bin/pip install --no-deps --no-build-isolation $REPO"
        return 0
    fi
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        say "ERROR: $PYTHON is older than Python 3.11" >&2
        exit 1
    fi
    [[ -x "$PREFIX/bin/python" ]] || "$PYTHON" -m venv "$PREFIX"
    # Build from a copy, so that root leaves no build/ or *.egg-info in the checkout.
    TMP_SRC="$(mktemp -d)"
    trap 'rm -rf "$TMP_SRC"' EXIT
    tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.egg-info' \
        --exclude=__pycache__ -cf - . | tar -C "$TMP_SRC" -xf -
    # Exactly the locked versions, each file hash-checked (`make lock`); then the project
    # itself, built with the locked setuptools, adding no dependency of its own.
    "$PREFIX/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$REPO/$LOCK"
    "$PREFIX/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation "$TMP_SRC"
    rm -rf "$TMP_SRC"
    say "Installed treadmill-safety into $PREFIX."
}

do_install() {
    say "Installing treadmill-safety${DESTDIR:+ under $DESTDIR}."

    say "Users: $CTL_USER (groups gpio i2c dialout), $WEB_USER (group $CTL_USER), $VOICE_USER (groups $CTL_USER audio)."
    ensure_user "$CTL_USER" "$CTL_USER" gpio,i2c,dialout "treadmill-safety controller"
    ensure_user "$WEB_USER" "$WEB_USER" "$CTL_USER" "treadmill-safety dashboard"
    ensure_user "$VOICE_USER" "$VOICE_USER" "$CTL_USER,audio" "treadmill-safety voice"
    [[ -n "$DESTDIR" ]] || check_socket_group

    say "Program: $PREFIX."
    install_venv
    install -d -m 0755 "$DESTDIR$PREFIX"
    install -m 0644 "$REPO/README.md" "$DESTDIR$PREFIX/README.md"

    install -d -m 0755 "$DESTDIR$CONFIG_DIR"
    if [[ -e "$DESTDIR$CONFIG_DIR/config.toml" ]]; then
        say "Config: kept the existing $CONFIG_DIR/config.toml (never overwritten)."
    else
        install -m 0644 "$HERE/config.example.toml" "$DESTDIR$CONFIG_DIR/config.toml"
        say "Config: installed $CONFIG_DIR/config.toml from the example: edit it for this treadmill."
    fi
    install_certificate
    check_voice

    # systemd creates these too (StateDirectory=); making them now lets
    # 'user add' run before the first start with the right owner.
    local entry dir owner
    for entry in "${STATE_DIRS[@]}"; do
        dir=${entry%%:*} owner=${entry##*:}
        install -d -m 0700 "$DESTDIR$dir"
        run chown "$owner:$owner" "$dir"
    done

    say "Units: ${ALL_UNITS[*]/#/$UNIT_DIR/}; udev: $UDEV_DIR/$RULES."
    install -d -m 0755 "$DESTDIR$UNIT_DIR" "$DESTDIR$UDEV_DIR"
    local unit
    for unit in "${ALL_UNITS[@]}"; do
        install -m 0644 "$HERE/$unit" "$DESTDIR$UNIT_DIR/$unit"
    done
    install -m 0644 "$HERE/$RULES" "$DESTDIR$UDEV_DIR/$RULES"

    run systemctl daemon-reload
    run udevadm control --reload
    run udevadm trigger --action=change --subsystem-match=tty --subsystem-match=gpio --subsystem-match=i2c-dev
    run systemctl enable "${UNITS[@]}"
    setup_replicator

    check_i2c
    local start_units=("${UNITS[@]}")
    [[ -z "$CLINIC_ID" ]] || start_units+=("$REPLICATOR")
    say "
Done. The services are enabled (they start at the next boot) but not started.
Next:
  1. edit $CONFIG_DIR/config.toml (serial port, pins, sensors, limits)
  2. $PREFIX/bin/treadmill-safety check-config $CONFIG_DIR/config.toml
  3. cd /tmp && sudo -u $CTL_USER $PREFIX/bin/treadmill-safety doctor --config $CONFIG_DIR/config.toml
     (as the service's user; lgpio needs a writable working directory); its \"dashboard certificate\"
     line gives the SHA-256 fingerprint each tablet checks once; run it again once the services
     run, for the voice's own view of its sound device
  4. sudo -u $WEB_USER $PREFIX/bin/treadmill-safety user add NAME --role admin --config $CONFIG_DIR/config.toml
     (the first account, an admin; it gives everyone else an account on the dashboard)
  5. sudo systemctl start ${start_units[*]}
     (the voice speaks on [voice] device; doctor's \"voice prompts\" line shows its state)${CLINIC_ID:+
  6. sudo -u $WEB_USER $PREFIX/bin/treadmill-safety clinic status --config $CONFIG_DIR/config.toml
     (the clinic record is reachable and its schema up to date; the clinic overview is /clinic)}"
}

do_uninstall() {
    say "Uninstalling treadmill-safety${DESTDIR:+ under $DESTDIR}."
    # Stopping the controller opens the relay: the treadmill stops. Only the units installed
    # (an older install has no replicator; systemctl fails on a unit file that does not exist).
    local unit installed=()
    for unit in "${ALL_UNITS[@]}"; do
        if [[ -e "$DESTDIR$UNIT_DIR/$unit" ]]; then
            installed+=("$unit")
        fi
    done
    if ((${#installed[@]})); then
        run systemctl disable --now "${installed[@]}"
    fi
    for unit in "${ALL_UNITS[@]}"; do
        rm -f "$DESTDIR$UNIT_DIR/$unit"
    done
    rm -f "$DESTDIR$UDEV_DIR/$RULES"
    if [[ -n "$DESTDIR" ]]; then
        rm -rf "${DESTDIR:?}$PREFIX"
    else
        rm -rf "$PREFIX"
    fi
    run systemctl daemon-reload
    run udevadm control --reload
    say "Removed the units, the udev rule and $PREFIX.
Kept: $CONFIG_DIR/ (the config, and the clinic's password file if any), /var/lib/treadmill-safety/ (events, settings,
what the clinic record has not got yet),
/var/lib/treadmill-dashboard/ (password hash, session secret) and the users
$CTL_USER, $WEB_USER and $VOICE_USER. Remove them by hand if wanted:
  sudo rm -r $CONFIG_DIR /var/lib/treadmill-safety /var/lib/treadmill-dashboard /var/cache/treadmill-voice
  sudo userdel $VOICE_USER; sudo userdel $WEB_USER; sudo userdel $CTL_USER
The clinic's PostgreSQL record, if any, is not touched."
}

main() {
    local mode=install
    while (($#)); do
        case "$1" in
            --uninstall) mode=uninstall ;;
            -h|--help) usage; exit 0 ;;
            *) say "unknown argument: $1 (use --uninstall or --help)" >&2; exit 2 ;;
        esac
        shift
    done
    if [[ -z "$DESTDIR" && $EUID -ne 0 ]]; then
        say "run as root (sudo make $mode), or set DESTDIR to stage the files" >&2
        exit 1
    fi
    "do_$mode"
}

main "$@"
