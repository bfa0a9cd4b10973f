import { markRefreshed, publicCall, rememberAdmin, safeNext } from '../api.js';
import { bindForm, params, setStatus } from '../ui.js';

const next = safeNext(params().get('next'));
if (params().has('next')) {
  setStatus(document.getElementById('notice'), 'Please log in to continue.');
}

bindForm(document.getElementById('login-form'), async (values) => {
  const answer = await publicCall('POST', 'login/', values);
  markRefreshed();
  rememberAdmin(answer?.user?.is_admin);
  location.assign(next);
});
