"""Great Expectations' Data Docs page of a validation, readable where the deployment has no
internet: GE's page takes Bootstrap and Font Awesome from CDNs, so GE's own custom-styles hook
(`data_docs_custom_styles.css`) adds the few rules the page needs to read offline (the status
icons included); online the CDN's styles apply as before. GE 1.x also shows a KL divergence of
exactly 0 as "None (-infinity, infinity, or NaN)" (its renderer tests the value's truth):
that one value is shown as the number it is.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

STYLES = Path(__file__).with_name("data_docs_styles")
KL_DIVERGENCE = "expect_column_kl_divergence_to_be_less_than"
GE_NONE = "None (-infinity, infinity, or NaN)"


def _zero_shown(original: Any) -> Any:
    """`original` renderer of a KL divergence's observed value, with 0 shown as 0."""

    def render(*args: Any, **kwargs: Any) -> Any:
        rendered = original(*args, **kwargs)
        result = kwargs.get("result")
        if result is None or result.result.get("observed_value") != 0:
            return rendered
        for block in getattr(rendered, "content_blocks", []):
            params = (getattr(block, "string_template", None) or {}).get("params", {})
            if params.get("observed_value") == GE_NONE:
                params["observed_value"] = "0"
        return rendered

    render._renderer_type = original._renderer_type  # GE's registry keys renderers by it
    return render


def _show_zero_kl_divergence() -> None:
    from great_expectations.expectations import registry
    from great_expectations.render import LegacyDiagnosticRendererType

    impl = registry.get_renderer_impl(KL_DIVERGENCE, LegacyDiagnosticRendererType.OBSERVED_VALUE)
    if impl is None or getattr(impl.renderer, "shows_zero", False):
        return
    fixed = _zero_shown(impl.renderer)
    fixed.shows_zero = True
    # GE warns that a renderer is overwritten: that is the point here, not news for the log.
    log = logging.getLogger(registry.__name__)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        registry.register_renderer(KL_DIVERGENCE, impl.expectation, fixed)
    finally:
        log.setLevel(level)


def render_page(result: Any) -> str:
    """The Data Docs page of a validation result (GE's ExpectationSuiteValidationResult)."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    _show_zero_kl_divergence()
    document = ValidationResultsPageRenderer().render(result)
    return DefaultJinjaPageView(custom_styles_directory=str(STYLES)).render(document)
