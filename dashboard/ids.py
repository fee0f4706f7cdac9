"""Component ids of the dashboard, one constant each, so pages and tests agree on them."""

from __future__ import annotations

# the app shell
CLIENT = "client"  # dcc.Store (local storage): this browser's session id
URL = "url"
NAV = "nav"

# exercise page
SCENARIO = "scenario"
UPLOAD = "upload"
UPLOAD_STATUS = "upload-status"
UPLOADED = "uploaded"  # dcc.Store: an uploaded scenario's text, once it validated
DESIGN = "design"
SPEED = "speed"
START = "start"
JOIN_CODE = "join-code"
JOIN = "join"
SETUP = "setup"
SETUP_MESSAGE = "setup-message"
EXERCISE = "exercise"  # dcc.Store: the code of the exercise this page shows
TICK = "tick"  # dcc.Interval
STATUS = "status"
PAUSE = "pause"
RESUME = "resume"
STOP = "stop"
CONTROL_MESSAGE = "control-message"
MAP = "facility-map"
PHYSICS = "physics"
FEED = "alert-feed"
DEVICE = "action-device"
ACTION = "action-kind"
APPLY = "apply"
CONFIRM_BOX = "confirm-box"
CONFIRM_TEXT = "confirm-text"
CONFIRM = "confirm"
CANCEL = "cancel"
ACTION_MESSAGE = "action-message"
ACTIONS = "my-actions"
HINTS = "hints"
LEGEND = "legend"

# trainer page
TOKEN = "trainer-token"
BECOME_TRAINER = "become-trainer"
TRAINER_MESSAGE = "trainer-message"
TEAM_SCENARIO = "team-scenario"
TEAM_DESIGN = "team-design"
TEAM_SPEED = "team-speed"
TEAM_START = "team-start"
TEAM_CODE = "team-code"
TRAINER_TICK = "trainer-tick"
TIMELINE = "attack-timeline"
ROSTER = "roster"
INJECT_TECHNIQUE = "inject-technique"
INJECT_TARGET = "inject-target"
INJECT = "inject"
HINT_TEXT = "hint-text"
PUSH_HINT = "push-hint"
PAUSE_ALL = "pause-all"
RESUME_TEAM = "resume-team"
STOP_TEAM = "stop-team"

# after-action page
AAR_LOAD = "aar-load"
SCORE_TOTAL = "score-total"
SCORE_LINES = "score-lines"
AAR_TIMELINE = "aar-timeline"
MATRIX = "attack-matrix"
EXPORT_JSON = "export-json"
EXPORT_CSV = "export-csv"
DOWNLOAD = "download"
PRINT = "print"
AAR_MESSAGE = "aar-message"

# detector lab
LAB_DETECTORS = "lab-detectors"
LAB_SCENARIOS = "lab-scenarios"
LAB_SEEDS = "lab-seeds"
LAB_DURATION = "lab-duration"
LAB_RUN = "lab-run"
LAB_TICK = "lab-tick"
LAB_PROGRESS = "lab-progress"
LAB_BOARD = "lab-board"
LAB_PLOT = "lab-plot"

# what-if
STUDY_DIR = "study-dir"
STUDY_OPEN = "study-open"
STUDY_MESSAGE = "study-message"
STUDY_TABLE = "study-table"
STUDY_PLOT = "study-plot"
STUDY_REPORT = "study-report"
PHYSICS_T = "physics-t"  # dcc.Store: the simulated time the physics chart shows
MAP_KEY = "map-key"  # dcc.Store: what the map shows, to send it only when it changed
