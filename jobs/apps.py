from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        from convai_admin.health import register_readiness
        from keys.services import refresh_stale_usage
        from teams import hooks as teams_hooks

        from . import periodic, services, worker

        # /readyz: a task worker wrote its heartbeat lately (convai_admin/health.py).
        register_readiness("workers", worker.readiness)

        # The stale sweep: jobs and task rows whose worker died (docs/jobs.md).
        periodic.register("jobs.sweep_stale", every="JOB_SWEEP_SECONDS", func=services.sweep_stale)
        # Account usage older than CONVAI_USAGE_MAX_AGE_SECONDS (keys.services).
        periodic.register(
            "keys.refresh_stale_usage",
            every="CONVAI_USAGE_REFRESH_INTERVAL_SECONDS",
            func=refresh_stale_usage,
        )
        # A deleted team's jobs go with it (teams.hooks).
        teams_hooks.register_team_remover("jobs", services.remove_team_jobs)
        # An archived team's unfinished jobs are cancelled with the archiving (teams.hooks).
        teams_hooks.register_team_archiver("jobs", services.cancel_team_jobs)
