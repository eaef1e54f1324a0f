from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        from . import periodic, services

        # The stale sweep: jobs and task rows whose worker died (docs/jobs.md).
        periodic.register("jobs.sweep_stale", every="JOB_SWEEP_SECONDS", func=services.sweep_stale)
