from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "jewelia.core"
    label = "core"
    verbose_name = "Jewelia core"
