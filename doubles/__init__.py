"""Stand-ins for what a test or benchmark cannot reach here, on the wire: loopback servers that speak
the paid model APIs' protocols (reached through the real SDKs), and a forwarding proxy in front of
the local emulators that injects faults or latency. Used by tests/ and bench/."""
