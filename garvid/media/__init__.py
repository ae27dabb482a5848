"""Video inputs: video files and frame folders behind one FrameSource interface.

Imports only garvid's shared basics.
"""
