"""What garvid writes: answers as text, JSON, SRT or WebVTT, and track overlay videos.
Imports qa and everything below."""
