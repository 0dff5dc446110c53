"""Extensions shared by the blueprints, each bound to an app with ``init_app(app)``."""

from __future__ import annotations

from flask_wtf.csrf import CSRFProtect

#: CSRF tokens on every state-changing request. Its exemptions are view names,
#: so one module-level instance serves every app (flaskr style).
csrf = CSRFProtect()
