"""Portable bundles: the team's characters as one JSON document, and back into a key
(docs/bundles.md).

schema.py: the format (schema `convai-admin/bundle@1`), a validated bundle and the rules for one
character (the character form's rules: characters/validation.py). reading.py: a file validated as
a stream, in bounded memory, refused as a whole with every problem found. exporting.py: the team's
characters streamed out as a bundle. uploads.py: a validated upload waiting (bounded on disk and
by rate) for its preview and confirmation. importing.py: the preview for one of the member's keys
(create, update or skip each character) and the background job that applies it.
"""
