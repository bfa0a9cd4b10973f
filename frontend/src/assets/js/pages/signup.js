import { publicCall } from '../api.js';
import { bindForm } from '../ui.js';

bindForm(document.getElementById('signup-form'), async (values) => {
  await publicCall('POST', 'register/', values);
  // Handed over in sessionStorage, not the URL: addresses stay out of access logs and history.
  sessionStorage.setItem('videoflix.signupEmail', values.email);
  location.assign('/pages/auth/check_mail.html');
});
