import { hasSession } from '../api.js';
import { bindLogoutButtons } from '../ui.js';

// Normally the header's button logged out already; a leftover session can still be ended here.
if (hasSession()) {
  document.getElementById('still-logged-in').hidden = false;
  bindLogoutButtons();
}
