"""Privacy: blurred public copies of evidence pictures (faces of bystanders, other plates).

``public_image(bundle_dir, name)`` is the one call other code needs: it returns the path of the
blurred copy of a bundle picture, making it first when missing.  See :mod:`etle.privacy.public`
(copies and their record), :mod:`etle.privacy.blur` (what is hidden) and
:mod:`etle.privacy.faces` (the face detector).
"""

from __future__ import annotations

from etle.privacy.public import PICTURES, PrivacyError, PublicCopies, make_public, public_image

__all__ = ["PICTURES", "PrivacyError", "PublicCopies", "make_public", "public_image"]
