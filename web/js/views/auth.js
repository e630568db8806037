import { login, register, session } from '../api.js';
import { h, append } from '../util.js';
import { heading } from '../ui.js';

/** A login or register form; calls onDone() once logged in. */
export function authForm(mode, onDone) {
  const isRegister = mode === 'register';
  const idPrefix = `${mode}-${Math.random().toString(36).slice(2, 8)}`;
  const email = h('input', {
    id: `${idPrefix}-email`, name: 'email', type: 'email', required: true, autocomplete: 'username', inputmode: 'email',
  });
  const password = h('input', {
    id: `${idPrefix}-password`, name: 'password', type: 'password', required: true,
    autocomplete: isRegister ? 'new-password' : 'current-password',
    minlength: isRegister ? '8' : null, maxlength: '1024',
    'aria-describedby': isRegister ? `${idPrefix}-hint` : null,
  });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, isRegister ? 'Create account' : 'Log in');
  const form = h('form', { class: 'auth-form' },
    h('div', { class: 'field' }, h('label', { for: email.id }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: password.id }, 'Password'), password,
      isRegister ? h('p', { id: `${idPrefix}-hint`, class: 'hint' }, 'At least 8 characters.') : null),
    error,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      if (isRegister) await register(email.value.trim(), password.value);
      else await login(email.value.trim(), password.value);
      onDone();
    } catch (err) {
      error.textContent = err.status === 401 && !isRegister ? 'Wrong email or password.' : err.message;
      submit.disabled = false;
      form.removeAttribute('aria-busy');
      (err.status === 400 || err.status === 409 ? email : password).focus();
    }
  });
  return form;
}

function safeNext(query) {
  const next = query.get('next') || '';
  // Only in-app hash routes: never an absolute URL from the address bar.
  return /^#\/[^\s]*$/.test(next) ? next : '#/events';
}

export function viewLogin(ctx, _params, query) {
  ctx.setTitle('Log in');
  const next = safeNext(query);
  if (session.loggedIn) {
    append(ctx.main, heading('Log in'), h('p', {}, `You are logged in as ${session.email}. `, h('a', { href: next }, 'Continue')));
    return;
  }
  append(ctx.main, 
    heading('Log in'),
    authForm('login', () => ctx.navigate(next)),
    h('p', {}, 'New here? ', h('a', { href: `#/register?next=${encodeURIComponent(next)}` }, 'Create an account')),
  );
}

export function viewRegister(ctx, _params, query) {
  ctx.setTitle('Create an account');
  const next = safeNext(query);
  append(ctx.main, 
    heading('Create an account'),
    authForm('register', () => ctx.navigate(next)),
    h('p', {}, 'Already registered? ', h('a', { href: `#/login?next=${encodeURIComponent(next)}` }, 'Log in')),
  );
}
