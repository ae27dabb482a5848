"""Shots: where a video cuts from one shot to the next.

:class:`~garvid.shots.shots.Shots` is the value the rest of garvid takes (frame boundaries
and times of every shot); :func:`~garvid.shots.detect.detect_shots` finds it with
PySceneDetect's AdaptiveDetector over small frames of any :class:`~garvid.media.source.FrameSource`;
:mod:`garvid.shots.formats` writes it (text, JSON, PySceneDetect's CSV) and
:mod:`garvid.shots.reading` reads a user's shot list back. Imports only media and the basics;
scenedetect (and OpenCV) load when shots are detected.
"""
