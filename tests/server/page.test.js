// The chat page at / in a real browser (headless Chromium through
// playwright-core): send a message, watch the answer stream in, press Stop,
// and check that the server cancelled the generation. Saves a screenshot
// (build/serve-page.png). Skipped when Chromium is not installed.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { URL, ROOT, metrics, idle } = require('./common.js');

const CHROMIUM = '/usr/bin/chromium';

test('chat page: a streamed answer, the stop button, a screenshot', { skip: !fs.existsSync(CHROMIUM) },
  async () => {
    const { chromium } = require('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless',
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 640 } });
      await page.goto(URL + '/');
      await page.waitForFunction(() => document.getElementById('model').textContent.includes('stories'));
      // a first answer, to its end: streamed into the page
      await page.fill('#temperature', '0');
      await page.fill('#max_tokens', '60');
      await page.fill('#input', 'Once upon a time');
      await page.press('#input', 'Enter');
      await page.waitForSelector('#status', { timeout: 20000 });
      const first = await page.textContent('.msg.assistant');
      assert.match(first, /length · 60 tokens/);
      // a long one, stopped while it streams
      const m0 = await metrics();
      const cancelled0 = m0.get('strix_requests_cancelled_total');
      const tokens0 = m0.get('strix_completion_tokens_total');
      await page.fill('#max_tokens', '480');
      await page.check('#ignore_eos');
      await page.fill('#temperature', '0.8');
      await page.fill('#input', 'Tell me a long story about a dog.');
      await page.click('#send');
      await page.waitForFunction(() => {
        const a = document.getElementById('answer');
        return a && a.textContent.length > 20;
      }, null, { polling: 'raf', timeout: 20000 });
      assert.equal(await page.isDisabled('#stop'), false);
      await page.click('#stop');
      await page.waitForSelector('#status', { timeout: 20000 });
      const texts = await page.$$eval('.msg.assistant', (els) => els.map((e) => e.textContent));
      assert.equal(texts.length, 2);
      assert.match(texts[1], /stopped$/);
      assert.equal(await page.isDisabled('#send'), false);
      const m = await idle(5000);
      // The stop reaches the server as a disconnect and cancels the request,
      // unless the server had already generated all 480 tokens (a small
      // model can outrun the browser): then nothing is left to cancel.
      const cancelled = m.get('strix_requests_cancelled_total');
      if (cancelled === cancelled0)
        assert.equal(m.get('strix_completion_tokens_total') - tokens0, 480);
      else
        assert.equal(cancelled, cancelled0 + 1);
      const shot = path.join(ROOT, 'build', 'serve-page.png');
      await page.screenshot({ path: shot });
      assert.ok(fs.statSync(shot).size > 10000);
    } finally {
      await browser.close();
    }
  });
