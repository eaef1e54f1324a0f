"""The old name of `audit_verify`, kept so existing scripts and cron lines keep working."""

from audit.management.commands.audit_verify import Command as AuditVerify


class Command(AuditVerify):
    help = "Alias of `audit_verify`. " + AuditVerify.help
