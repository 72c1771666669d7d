"""People discovery in a photo library.

Pure parts (arrays and bytes in and out): clustering faces with human decisions
(:mod:`~faceprint.library.cluster`, :mod:`~faceprint.library.decisions`) and face regions in
XMP (:mod:`~faceprint.library.xmp`).

On the core's storage (either engine): the library's tables (:mod:`~faceprint.library.schema`,
:mod:`~faceprint.library.store`), indexing folders (:mod:`~faceprint.library.index`, on Ray:
:mod:`~faceprint.library.ray_index`), clustering what is stored
(:mod:`~faceprint.library.regroup`), the human decisions (:mod:`~faceprint.library.people`)
and the gallery templates they make (:mod:`~faceprint.library.sync`), what is shown
(:mod:`~faceprint.library.view`) and XMP sidecars written (:mod:`~faceprint.library.sidecars`).
"""
