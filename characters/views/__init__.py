"""The character pages, one module per page family (characters/urls.py names each view):

- listing: the list, and "Check now" for unfinished creates, clones and deletes
- create: create, import from Convai, adopt after a timeout, the voice picker
- detail: a character's page
- edit: edit, sync, "Keep ours", retry languages
- revisions: history, compare, restore
- dialogs: clone, delete, remove, rebind
- bundles: export, bundle import and preview, "Copy to another key" (`bundles:` URLs)
- common: what they share (finding the character, where to go next, the catalogue to read)

What a character is and what a member may do to it comes from characters/presenters.py.
"""
