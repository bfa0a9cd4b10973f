import { publicCall } from '../api.js';
import { bindForm } from '../ui.js';

bindForm(document.getElementById('signup-form'), async (values) => {
  await publicCall('POST', 'register/', values);
  location.assign(`/pages/auth/check_mail.html?email=${encodeURIComponent(values.email)}`);
});
