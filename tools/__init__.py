"""Developer tools run from the source tree (never shipped in the image): the docs' generated pages."""
