"""Re-seal events written before the keyed chain (plain SHA-256, no key ID) under the audit
key, fill the chains' filter registries, and — on PostgreSQL only — install the trigger that
refuses UPDATE and DELETE on the event table unless the transaction set
`convai_admin.audit_prune` (audit_prune is the one sanctioned path). TRUNCATE stays the
table owner's (test databases are flushed with it); the chain and checkpoints catch it."""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('convai_admin.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (% refused; audit_prune is the only way to delete)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
TRIGGERS = """
CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_append_only();
"""


def reseal(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditChain = apps.get_model("audit", "AuditChain")
    if not AuditEvent.objects.exists():
        return
    from audit.chain import GENESIS, SEALED_FIELDS, canonical, mac
    from audit.keyring import keyring

    ring = keyring()
    kid = ring.active_id
    key = ring.keys[kid]
    for head in AuditChain.objects.all():
        prev = GENESIS
        actions, actors = set(), {}
        for event in AuditEvent.objects.filter(chain=head.scope).order_by("seq").iterator():
            event.prev_hash = prev
            event.key_id = kid
            event.hash = mac(key, canonical([getattr(event, f) for f in SEALED_FIELDS]))
            AuditEvent.objects.filter(pk=event.pk).update(
                prev_hash=event.prev_hash, key_id=kid, hash=event.hash
            )
            prev = event.hash
            actions.add(event.action)
            if event.actor_id is not None:
                actors[str(event.actor_id)] = event.actor_label
        head.last_hash = prev
        head.actions = sorted(actions)
        head.actors = actors
        head.save(update_fields=["last_hash", "actions", "actors"])


def install_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION, params=None)
        schema_editor.execute(TRIGGERS, params=None)


def remove_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_chain_keys_checkpoints_indexes"),
    ]

    operations = [
        migrations.RunPython(reseal, migrations.RunPython.noop),
        migrations.RunPython(install_trigger, remove_trigger),
    ]
