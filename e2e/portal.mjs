// End-to-end test of the hosted login portal in a real headless Chromium.
// Started by gateway/tests/it/portal_e2e.rs, which runs the gateway (access tokens
// of ACCESS_TTL_SECONDS) in front of the demo upstream and registers a user who
// belongs to the tenants "acme" and "beta". Exits non-zero on the first failure.
//
// Env: BASE_URL, EMAIL, PASSWORD, ACCESS_TTL_SECONDS, CHROMIUM, SCREENSHOT.
import { chromium, request } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('BASE_URL');
const email = env('EMAIL');
const password = env('PASSWORD');
const ttl = Number(env('ACCESS_TTL_SECONDS'));

function check(condition, message) {
  if (!condition) throw new Error(message);
  console.log(`ok - ${message}`);
}

async function identity(page, header) {
  const row = page.locator('tr', { has: page.locator('th', { hasText: new RegExp(`^${header}$`) }) });
  return (await row.locator('td').textContent())?.trim();
}

async function cookie(context, name) {
  return (await context.cookies(base)).find((c) => c.name === name);
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'],
});
try {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 900, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  // 1. The app behind the gateway sends an anonymous browser to the login page.
  await page.goto(`${base}/dashboard?tab=overview`);
  const login = new URL(page.url());
  check(login.pathname === '/auth/ui/login', `redirected to the login page (${login.pathname})`);
  check(login.searchParams.get('return_to') === '/dashboard?tab=overview', 'the return URL is the original one');
  await page.getByLabel('Email address').waitFor();
  await page.screenshot({ path: env('SCREENSHOT') });

  // 2. Log in: the user has two tenants, so the picker comes first.
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('Password').fill(password);
  await Promise.all([page.waitForURL(/\/auth\/ui\/tenants/), page.getByRole('button', { name: 'Sign in' }).click()]);
  check(true, 'after login, the tenant picker');
  const access = await cookie(context, 'tg_access');
  check(access && access.httpOnly && access.sameSite === 'Lax', 'the access cookie is HttpOnly and SameSite=Lax');
  await Promise.all([page.waitForURL(/\/dashboard/), page.getByRole('button', { name: /Acme/ }).click()]);

  // 3. Back on the original URL, the demo app shows the identity headers.
  check(new URL(page.url()).pathname === '/dashboard' && new URL(page.url()).search === '?tab=overview', `back on ${page.url()}`);
  check((await identity(page, 'x-user-email')) === email, 'the app sees X-User-Email');
  check((await identity(page, 'x-tenant-slug')) === 'acme', 'the app sees X-Tenant-Slug: acme');
  check((await identity(page, 'x-tenant-role')) === 'owner', 'the app sees X-Tenant-Role: owner');

  // 4. The access token expires (the browser drops its cookie with it); the next
  //    page load is refreshed on the fly, without a visible redirect.
  const refreshBefore = (await cookie(context, 'tg_refresh')).value;
  const deadline = Date.now() + (ttl + 20) * 1000;
  while ((await cookie(context, 'tg_access')) && Date.now() < deadline) {
    await page.waitForTimeout(500);
  }
  check(!(await cookie(context, 'tg_access')), 'the access cookie expired');
  const response = await page.goto(`${base}/dashboard`);
  check(response.status() === 200 && response.request().redirectedFrom() === null, 'the page loads with no redirect');
  check((await identity(page, 'x-user-email')) === email, 'still signed in after the access token expired');
  check(Boolean(await cookie(context, 'tg_access')), 'a new access cookie was set');
  check((await cookie(context, 'tg_refresh')).value !== refreshBefore, 'the refresh cookie was rotated');

  // 5. Switch tenant from the portal.
  await page.goto(`${base}/auth/ui/tenants?return_to=%2Fdashboard`);
  await Promise.all([page.waitForURL(/\/dashboard/), page.getByRole('button', { name: /Beta/ }).click()]);
  check((await identity(page, 'x-tenant-slug')) === 'beta', 'after switching, the app sees X-Tenant-Slug: beta');
  check((await identity(page, 'x-tenant-role')) === 'member', 'and the role there: member');

  // 6. The tenant's API keys, from the picker (owner of acme, member of beta): a
  //    key made in the form is shown once, works as X-Api-Key, and is revoked.
  await page.goto(`${base}/auth/ui/tenants`);
  check((await page.getByRole('link', { name: 'API keys' }).count()) === 1, 'the picker links only the owned tenant\'s API keys');
  await Promise.all([page.waitForURL(/\/auth\/ui\/tenants\/acme\/api-keys$/), page.getByRole('link', { name: 'API keys' }).click()]);
  await page.getByLabel('Name', { exact: true }).fill('e2e deploys');
  await page.getByLabel('Role', { exact: true }).selectOption({ label: 'Member' });
  await page.getByLabel('Expires', { exact: true }).selectOption({ label: 'in 30 days' });
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.locator('#new-key').waitFor();
  const key = await page.locator('#new-key').inputValue();
  check(/^tgk_[A-Za-z0-9]{12}_[A-Za-z0-9]{43}$/.test(key), 'the new key is shown');
  check(await page.getByText('it will not be shown again').isVisible(), 'with the warning that it is shown once');
  const machine = await request.newContext();
  const keyed = await machine.get(`${base}/dashboard`, { headers: { 'X-Api-Key': key } });
  check(keyed.status() === 200, `the key works through the gateway (${keyed.status()})`);
  await page.goto(`${base}/auth/ui/tenants/acme/api-keys`);
  check((await page.locator('#new-key').count()) === 0 && !(await page.content()).includes(key), 'a reload does not show it');
  await Promise.all([page.waitForURL(/revoked=1/), page.getByRole('button', { name: /Revoke/ }).click()]);
  check(await page.getByText('The key is revoked').isVisible(), 'revoked from the page');
  // A program, not a browser: 401, also on this redirect route, in either header.
  const refused = await machine.get(`${base}/dashboard`, { headers: { Authorization: `Bearer ${key}` }, maxRedirects: 0 });
  check(refused.status() === 401, `the revoked key is refused (${refused.status()})`);
  const asHeader = await machine.get(`${base}/dashboard`, { headers: { 'X-Api-Key': key }, maxRedirects: 0 });
  check(asHeader.status() === 401, `the revoked key is refused as X-Api-Key too (${asHeader.status()})`);
  await machine.dispose();

  // 7. Log out: cookies gone, and the app sends the browser to the login page again.
  await page.goto(`${base}/auth/ui/logout`);
  await Promise.all([page.waitForURL(/\/auth\/ui\/login/), page.getByRole('button', { name: 'Sign out' }).click()]);
  check(await page.getByText('You are signed out.').isVisible(), 'the login page says so');
  check(!(await cookie(context, 'tg_refresh')) && !(await cookie(context, 'tg_access')), 'the session cookies are cleared');
  await page.goto(`${base}/dashboard`);
  check(new URL(page.url()).pathname === '/auth/ui/login', 'the app redirects to the login page again');
  console.log('e2e: all steps passed');
} finally {
  await browser.close();
}
