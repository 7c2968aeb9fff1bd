"""condensed_speech_commands dataset."""
