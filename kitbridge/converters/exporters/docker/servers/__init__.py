"""Files copied into exported Docker contexts (they run inside the container, not in kitbridge)."""
