"""The local provider emulator: server.py serves one dialect module per provider API (wire.py is
what they share); command.py is `sms-cli emulator`."""
