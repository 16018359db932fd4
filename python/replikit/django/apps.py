"""The Django app (INSTALLED_APPS = [..., "replikit.django"]): checks settings.REPLIKIT at
start-up and provides `manage.py replikit_status`."""

from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed


class ReplikitConfig(AppConfig):
    name = "replikit.django"
    label = "replikit"
    verbose_name = "replikit"

    def ready(self) -> None:
        from . import conf
        from .state import reset_state

        conf.load()  # a bad REPLIKIT setting fails at start-up, not at the first query

        def changed(setting: str, **kwargs: object) -> None:
            if setting in ("REPLIKIT", "DATABASES", "SECRET_KEY"):
                reset_state()

        setting_changed.connect(changed, weak=False, dispatch_uid="replikit.django.settings")
