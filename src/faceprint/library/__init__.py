"""People discovery in a photo library: clustering faces with human decisions
(:mod:`faceprint.library.cluster`) and face regions in XMP (:mod:`faceprint.library.xmp`).

Both are pure: arrays and bytes in, arrays and bytes out; storage and indexing live elsewhere.
"""
