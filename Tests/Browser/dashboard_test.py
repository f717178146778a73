#!/usr/bin/env python3
"""Drives the coordinator's dashboard in a real headless Chromium through Selenium.

Run by DashboardBrowserTests.swift (FarmTests) against a real coordinator, PostgreSQL and synthetic
workers; it can also be run by hand against any farm. Uses Debian's chromium and chromium-driver and
python3-selenium (Deploy/install-deps.sh --test installs them). Every wait polls with a deadline;
nothing sleeps for a fixed time. Screenshots of each page go to --artifacts.
"""
import argparse
import os
import sys
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException, TimeoutException,
                                        WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

PROMPTS = ["a red fox in the snow", "a castle at night", "a bowl of soup"]


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="the coordinator's HTTP address, http://HOST:PORT")
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--other-token", required=True, help="a submit token of another owner")
    parser.add_argument("--other-job", type=int, required=True, help="a job of the other token's owner")
    parser.add_argument("--model", default="synthetic")
    parser.add_argument("--drain", required=True, help="the worker to drain from the workers page")
    parser.add_argument("--artifacts", required=True, help="where screenshots go")
    parser.add_argument("--timeout", type=float, default=240, help="seconds each wait may take")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    return parser.parse_args()


class Dashboard:
    """One headless Chromium on the dashboard, with waits that poll until a deadline."""

    def __init__(self, arguments):
        self.arguments = arguments
        self.url = arguments.url.rstrip("/")
        options = webdriver.ChromeOptions()
        options.binary_location = arguments.chromium
        for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions", "--force-color-profile=srgb"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = self.start_browser(options)
        self.driver.set_page_load_timeout(arguments.timeout)
        os.makedirs(arguments.artifacts, exist_ok=True)

    def start_browser(self, options):
        """Starts Chromium through chromedriver, again on failure until the deadline: on a loaded machine its
        first start can time out."""
        deadline = time.monotonic() + self.arguments.timeout
        while True:
            try:
                return webdriver.Chrome(service=Service(executable_path=self.arguments.chromedriver), options=options)
            except WebDriverException as error:
                print("chromium did not start:", str(error).strip().splitlines()[0] if str(error).strip() else error, flush=True)
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)  # a back-off between attempts, not a wait for a state

    def wait(self, what, condition, timeout=None):
        """Polls `condition(driver)` until it is truthy; fails naming `what` at the deadline."""
        waiter = WebDriverWait(self.driver, timeout or self.arguments.timeout, poll_frequency=0.2,
                               ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
        try:
            return waiter.until(condition)
        except TimeoutException:
            raise AssertionError("timed out waiting for " + what) from None

    def by_id(self, element_id):
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id):
        return self.by_id(element_id).text

    def screenshot(self, name):
        path = os.path.join(self.arguments.artifacts, name + ".png")
        self.driver.save_screenshot(path)
        print("screenshot:", path, flush=True)

    def script(self, source, *arguments):
        return self.driver.execute_script(source, *arguments)

    def error_banner(self):
        banner = self.by_id("error")
        return "" if banner.get_attribute("hidden") is not None else banner.text

    def sign_in(self, token, keyboard=False):
        self.wait("the sign-in form", lambda d: self.by_id("token").is_displayed())
        field = self.by_id("token")
        field.clear()
        field.send_keys(token)
        if keyboard:
            field.send_keys(Keys.ENTER)
        else:
            self.by_id("sign-in").click()
        self.wait("the jobs page after signing in", lambda d: self.by_id("jobs").get_attribute("data-loaded") == "true")

    def sign_out(self):
        self.by_id("sign-out").click()
        self.wait("the sign-in form after signing out", lambda d: self.by_id("token").is_displayed())

    def go(self, nav_id, ready):
        self.by_id(nav_id).click()
        self.wait("the page behind " + nav_id, ready)


def run(page, arguments):
    driver = page.driver
    driver.get(page.url + "/")
    page.wait("the sign-in page", lambda d: "DiffusionFarm" in d.title and page.by_id("token").is_displayed())

    # A wrong token is refused in words.
    field = page.by_id("token")
    field.send_keys("0" * 64)
    page.by_id("sign-in").click()
    page.wait("the refusal of a wrong token", lambda d: "invalid or revoked token" in page.error_banner())
    page.screenshot("signin")

    # Sign in as the admin.
    page.sign_in(arguments.admin_token)
    page.wait("the admin's workers link", lambda d: page.by_id("nav-workers").is_displayed())

    # Submit a 3 × 4 sweep from the form, watching the live count.
    page.go("nav-submit", lambda d: page.by_id("submit-form").get_attribute("data-models") not in (None, "", "0"))
    model = page.by_id("model")
    model.clear()
    model.send_keys(arguments.model)
    page.by_id("job-name").clear()
    page.by_id("job-name").send_keys("dashboard sweep")
    page.by_id("prompts").send_keys("\n".join(PROMPTS))
    for field_id, value in [("width", "32"), ("height", "32"), ("steps", "5"), ("seeds", "1-4")]:
        page.by_id(field_id).clear()
        page.by_id(field_id).send_keys(value)
    page.wait("the live count of 12 tasks", lambda d: page.by_id("task-count").get_attribute("data-tasks") == "12")
    assert "3 prompt(s) × 4 seed(s)" in page.text("task-count"), page.text("task-count")
    page.screenshot("submit")
    page.by_id("submit-job").click()
    page.wait("the new job's page", lambda d: "#/job/" in d.current_url)
    job = int(driver.current_url.rsplit("/", 1)[1])
    print("submitted job", job, flush=True)

    # The progress bar reaches 12/12 and the gallery shows 12 loaded thumbnails.
    page.wait("the progress bar at 12/12", lambda d: page.text("job-progress-text") == "12/12 done")
    bar = page.by_id("job-progress")
    assert bar.get_attribute("value") == "12" and bar.get_attribute("max") == "12", (bar.get_attribute("value"), bar.get_attribute("max"))
    page.wait("12 thumbnails in the gallery", lambda d: page.by_id("gallery").get_attribute("data-count") == "12")
    page.wait("12 loaded thumbnail images", lambda d: page.script(
        "return [...document.querySelectorAll('#gallery img')].filter(i => i.complete && i.naturalWidth > 0).length") == 12)
    assert page.error_banner() == "", page.error_banner()
    page.screenshot("job")

    # Open one image and read its parameters.
    driver.find_elements(By.CSS_SELECTOR, "#gallery button.thumb")[0].click()
    page.wait("the image viewer", lambda d: page.script("return document.getElementById('viewer').open") is True)
    page.wait("the image's parameters", lambda d: "Steps: 5" in page.text("viewer-parameters"))
    parameters = page.text("viewer-parameters")
    print("parameters:", parameters.replace("\n", " | "), flush=True)
    assert PROMPTS[0] in parameters and "Seed: 1" in parameters and "Size: 32x32" in parameters, parameters
    assert page.script("return document.getElementById('viewer-image').naturalWidth") == 32
    assert page.by_id("viewer-download").get_attribute("download").endswith(".png")
    page.screenshot("image")
    page.by_id("viewer-close").click()
    page.wait("the viewer to close", lambda d: page.script("return document.getElementById('viewer').open") is False)

    # The jobs page lists it done (and the other owner's job too: this is an admin token).
    page.go("nav-jobs", lambda d: page.by_id("jobs").get_attribute("data-loaded") == "true")
    page.wait("the sweep's row at 12/12", lambda d: page.text("job-%d-progress-text" % job) == "12/12 done")
    rows = [int(r.get_attribute("data-job")) for r in driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr[data-job]")]
    assert job in rows and arguments.other_job in rows, rows
    page.screenshot("jobs")

    # Drain a worker from the workers page and see its state change.
    selector = 'td.state[data-worker="%s"]' % arguments.drain
    page.go("nav-workers", lambda d: driver.find_element(By.CSS_SELECTOR, selector).text == "online")
    driver.find_element(By.CSS_SELECTOR, 'button[data-worker="%s"][data-action="drain"]' % arguments.drain).click()
    page.wait("the drained worker's new state",
              lambda d: driver.find_element(By.CSS_SELECTOR, selector).text in ("draining", "offline"))
    print("worker", arguments.drain, "is", driver.find_element(By.CSS_SELECTOR, selector).text, flush=True)
    assert page.error_banner() == "", page.error_banner()
    page.screenshot("workers")

    # A phone's width: the page does not scroll sideways (wide tables scroll in their own box).
    driver.set_window_size(390, 844)
    page.go("nav-jobs", lambda d: page.by_id("jobs").get_attribute("data-loaded") == "true")
    page.wait("a layout that fits a phone", lambda d: page.script(
        "return document.documentElement.scrollWidth <= window.innerWidth"))
    page.screenshot("jobs-phone")
    driver.set_window_size(1280, 1000)

    # Another owner's submit token sees its own job only, and no admin controls.
    page.sign_out()
    page.sign_in(arguments.other_token, keyboard=True)
    page.wait("the other owner's job", lambda d: driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr[data-job]"))
    rows = [int(r.get_attribute("data-job")) for r in driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr[data-job]")]
    assert rows == [arguments.other_job], rows
    assert not page.by_id("nav-workers").is_displayed()
    assert driver.find_elements(By.CSS_SELECTOR, "#jobs button") == [] or all(
        b.get_attribute("id") in ("jobs-previous", "jobs-next") for b in driver.find_elements(By.CSS_SELECTOR, "#jobs button"))
    page.screenshot("jobs-other-owner")
    page.script("location.hash = arguments[0]", "#/job/%d" % job)
    page.wait("the refusal of another owner's job", lambda d: ("job %d does not exist" % job) in page.error_banner())
    assert page.script("return document.querySelectorAll('#gallery img').length") == 0
    page.screenshot("job-other-owner")


def browser_errors(driver):
    """Script errors in the browser's console; failed fetches (the API's 4xx answers) are expected, not errors."""
    try:
        entries = driver.get_log("browser")
    except Exception:  # a driver without the log endpoint
        return []
    return [e["message"] for e in entries if e.get("level") == "SEVERE" and "Failed to load resource" not in e["message"]]


def main():
    arguments = parse_arguments()
    page = Dashboard(arguments)
    try:
        run(page, arguments)
        errors = browser_errors(page.driver)
        if errors:
            raise AssertionError("script errors in the browser console:\n" + "\n".join(errors))
        print("dashboard test passed", flush=True)
        return 0
    except Exception:
        traceback.print_exc()
        try:
            page.screenshot("failure")
            with open(os.path.join(arguments.artifacts, "failure.html"), "w") as file:
                file.write(page.driver.page_source)
            print("browser console:", *browser_errors(page.driver), sep="\n")
        except Exception:
            traceback.print_exc()
        return 1
    finally:
        page.driver.quit()


if __name__ == "__main__":
    sys.exit(main())
