"""Your own documents as a lab corpus folder (``OUT/docs/<doc_id>.txt`` + ``OUT/manifest.json``).

- :mod:`lab.ingest.provenance`: a character span of a document -> its pages, its section and a
  citation label, from the manifest's page and section maps.
"""
