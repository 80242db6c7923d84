"""Contact with bridges: signed check-ins, and the public node info the bridge pings back."""
