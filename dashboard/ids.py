"""Component ids shared by layouts, callbacks and tests (CONTRACT.md §6 for the anchors)."""

# -- the page contract (CONTRACT.md §6) ------------------------------------------------------
ERROR_STATS = "error-stats"
HEALTH_STATUS = "health-status"
ERROR_LIST = "error-list"
CATEGORY_FILTER = "category-filter"
SEVERITY_FILTER = "severity-filter"
NOTIFICATIONS = "notifications"
CRITICAL_DIALOG = "critical-dialog"
ERROR_SEARCH = "error-search"
SEARCH_RESULTS = "search-results"
ERROR_DETAIL = "error-detail"
TRENDS_CHARTS = "trends-charts"

# -- the shell: every page --------------------------------------------------------------------
URL = "url"
PAGE = "page-content"
NAV_INTERVAL = "nav-interval"
MONITOR_LINE = "monitor-line"
THEME_SWITCH = "theme-switch"
THEME_STORE = "theme-store"
SETTINGS_BUTTON = "settings-button"
SOUND_SWITCH = "alert-sound-switch"
BROWSER_SWITCH = "alert-browser-switch"
NOTICE_STATE = "notice-state"
CRITICAL_SIGNAL = "critical-signal"
CRITICAL_TITLE = "critical-title"
CRITICAL_LIST = "critical-list"
CRITICAL_MORE = "critical-more"
CRITICAL_DISMISS = "critical-dismiss"
DETAIL_MODAL = "detail-modal"
DETAIL_BODY = "detail-body"
CLIENT_EFFECT = "client-effect"

# -- Overview ------------------------------------------------------------------------------
LIVE_INTERVAL = "live-interval"
LIVE_CURSOR = "live-cursor"
STATS_INTERVAL = "stats-interval"
STATS_WINDOW = "stats-window"
STAT_TOTAL = "stat-total"
STAT_CRITICAL = "stat-critical"
STAT_ERROR = "stat-error"
STAT_WARNING = "stat-warning"
LIVE_NOTE = "live-note"

# -- Errors --------------------------------------------------------------------------------
SEARCH_BUTTON = "search-button"
SEARCH_RANGE = "search-range"
SEARCH_FROM = "search-from"
SEARCH_TO = "search-to"
SEARCH_CUSTOM = "search-custom"
SEARCH_CUSTOM_UTC = "search-custom-utc"
SEARCH_SUMMARY = "search-summary"
SEARCH_PROBLEM = "search-problem"
SEARCH_STATE = "search-state"
PAGER_NEWEST = "pager-newest"
PAGER_NEWER = "pager-newer"
PAGER_OLDER = "pager-older"
EXPORT_LINK = "export-link"

# -- Trends --------------------------------------------------------------------------------
TRENDS_RANGE = "trends-range"
TRENDS_BUCKET = "trends-bucket"
TRENDS_FROM = "trends-from"
TRENDS_TO = "trends-to"
TRENDS_CUSTOM = "trends-custom"
TRENDS_CUSTOM_UTC = "trends-custom-utc"
TRENDS_REFRESH = "trends-refresh"
TRENDS_INTERVAL = "trends-interval"
TRENDS_SUMMARY = "trends-summary"
MODAL_DETAIL = "modal-detail"

# -- Groups --------------------------------------------------------------------------------

# -- Alerts --------------------------------------------------------------------------------

# -- Monitor -------------------------------------------------------------------------------
