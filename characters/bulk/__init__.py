"""Bulk character operations that run in the background: import all of a key (importing.py),
sync all of a team (syncing.py), on the pooled engine of jobs/pool.py. The preview and the
start run in a request; the task bodies run in the worker (`manage.py db_worker`) through
jobs.services.run_job, which owns the job's state.

Every character's result is stored with the job item in one transaction: the character, its
revision, its audit event (origin "task <kind> #<id>") and the item's result commit together,
so a worker killed in the middle leaves no half-recorded character, and a resumed job does not
redo an item that is done (items.py).

The same characters in two jobs: a sync writes a character only if its version is still the one
it had when the sync read it (a teammate's save meanwhile wins, the item says "skipped"); an
import that finds the character already in the team (another job, a teammate) skips it — the
database's one-live-character-per-team constraint decides. Jobs themselves are one at a time per
key (import) and per team (sync): see jobs/services.py.

Everything a character's record, revision and event need goes through characters.services'
public functions: a job's import stores a character as an import does (store_new_character),
its sync takes Convai's state as "Sync from Convai" does (apply_remote_state, with the version
guard), and its failures are recorded as a page's are (record_convai_failure).
"""
