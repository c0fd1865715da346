"""The papers' training recipe on the device: image operations (kornia), batch mixing, weight averaging."""
