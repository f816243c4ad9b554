//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand next to the routes it
//! describes (a test checks that every routed path appears here).

use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn upload_body() -> Value {
    json!({
        "required": true,
        "content": {
            "multipart/form-data": { "schema": { "type": "object", "required": ["file"], "properties": {
                "file": { "type": "string", "format": "binary", "description": "A PDF or an image (PNG, JPEG, TIFF, WebP, GIF, BMP); the type is sniffed from the bytes." },
                "format": { "$ref": "#/components/schemas/Format", "description": "Synchronous OCR only (jobs choose it when fetching the result; refused on POST /v1/jobs)." },
                "webhook": { "type": "string", "description": "Jobs only: http:// URL on an operator-allowed host, called on completion." }
            }, "additionalProperties": { "type": "string", "description": "Any OcrOptions field (mode, task, locate, dpi, pages, password, lang, max_new_tokens, ngram, ngram_size, ngram_window)." } } },
            "application/octet-stream": { "schema": { "type": "string", "format": "binary" } }
        }
    })
}

fn option_params() -> Value {
    let p = |name: &str, schema: Value, desc: &str| json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": desc });
    json!([
        p("mode", json!({ "enum": ["tiny", "small", "base", "large", "gundam", "gundam-master"] }), "Resolution mode."),
        p("task", json!({ "enum": ["markdown", "ocr", "free", "figure", "describe", "locate"] }), "What to ask the model."),
        p("locate", json!({ "type": "string" }), "Text to find (task=locate)."),
        p("dpi", json!({ "type": "number" }), "PDF render resolution."),
        p("pages", json!({ "type": "string" }), "Pages, e.g. 1-3,7,10-."),
        p("password", json!({ "type": "string" }), "Password of an encrypted PDF."),
        p("lang", json!({ "type": "string" }), "Expected languages, comma-separated."),
        p("max_new_tokens", json!({ "type": "integer" }), "Token budget per page."),
        p("format", json!({ "$ref": "#/components/schemas/Format" }), "Result format (sync OCR)."),
        p("formats", json!({ "type": "string" }), "Several result formats at once, comma-separated (sync OCR): one JSON object keyed by format name; text formats as strings, json as an object, pdf as base64."),
        p("hide_headers", json!({ "type": "boolean" }), "Hide running headers and footers (sync OCR; reversible, flagged in JSON)."),
        p("merge_tables", json!({ "type": "boolean" }), "Merge tables continued across pages (sync OCR).")
    ])
}

fn job_path_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" } })
}

/// The document.
pub fn document() -> Value {
    let common_errors = |v: &mut Value| {
        let r = v["responses"].as_object_mut().expect("responses object");
        r.insert("401".into(), err("Missing or wrong API key."));
        r.insert("429".into(), json!({ "description": "Queue full; see Retry-After.", "headers": { "Retry-After": { "schema": { "type": "integer" } } }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }));
    };
    let mut ocr = json!({
        "summary": "Synchronous OCR of one document",
        "parameters": option_params(),
        "requestBody": upload_body(),
        "responses": {
            "200": { "description": "The result in the requested format (JSON by default).", "content": {
                "application/json": { "schema": { "$ref": "#/components/schemas/Result" } },
                "text/markdown": {}, "text/html": {}, "text/vnd.hocr+html": {}, "text/plain": {}, "application/pdf": {} } },
            "400": err("Bad request or options."), "408": err("The request body stalled."), "413": err("Upload too large."),
            "415": err("Not a PDF or supported image."),
            "422": err("Unreadable document, or over a page, pixel or decompression limit."),
            "504": err("Timed out.")
        }
    });
    common_errors(&mut ocr);
    let mut create = json!({
        "summary": "Submit an async job",
        "parameters": option_params(),
        "requestBody": upload_body(),
        "responses": {
            "202": { "description": "Accepted.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Accepted" } } } },
            "400": err("Bad request or options."), "408": err("The request body stalled."), "413": err("Upload too large."),
            "415": err("Not a document.")
        }
    });
    common_errors(&mut create);
    json!({
        "openapi": "3.1.0",
        "info": { "title": "docseek", "version": env!("CARGO_PKG_VERSION"), "description": "Multilingual document OCR (DeepSeek-OCR). Errors are {\"error\":{\"code\",\"message\"}} with stable codes: bad_request, invalid_options, unauthorized, not_found, not_ready, cancelled, payload_too_large, request_timeout, unsupported_media_type, invalid_document, limit_exceeded, queue_full, timeout, model_error, unavailable, internal." },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
                "Format": { "enum": ["json", "md", "html", "hocr", "txt", "pdf"] },
                "JobState": { "enum": ["queued", "running", "done", "failed", "cancelled"] },
                "Accepted": { "type": "object", "properties": { "id": { "type": "string" }, "state": { "$ref": "#/components/schemas/JobState" }, "queue_position": { "type": ["integer", "null"] }, "links": { "type": "object" } } },
                "Block": { "type": "object", "description": "A block of docseek.document/1 (docs/json-schema.md).", "properties": {
                    "page": { "type": "integer" }, "index": { "type": "integer" }, "label": { "type": "string" }, "kind": { "type": "string" },
                    "heading_level": { "type": "integer" }, "text": { "type": "string" }, "html": { "type": "string" }, "latex": { "type": "string" },
                    "figure": { "type": "string", "description": "figures/page-N-fig-K.png, relative to the result URL" },
                    "table": { "type": "object" }, "language": { "type": ["object", "null"] }, "flags": { "type": "object" }, "warnings": { "type": "array" },
                    "boxes": { "type": "array", "items": { "type": "object", "properties": {
                        "grid": { "type": "array", "items": { "type": "integer" } }, "pixels": { "type": "array", "items": { "type": "integer" } }, "points": { "type": "array", "items": { "type": "number" } } } } } } },
                "Page": { "type": "object", "description": "A page of docseek.document/1; live events add index (position in the job) and, for a failed page, error.", "properties": {
                    "number": { "type": "integer" }, "index": { "type": "integer" }, "pixel_size": { "type": "object" }, "point_size": { "type": "object" }, "dpi": { "type": "number" },
                    "outcome": { "enum": ["finished", "length", "repetition"] }, "prompt_tokens": { "type": "integer" }, "generated_tokens": { "type": "integer" },
                    "timings": { "type": "object" }, "raw": { "type": "string" }, "language": { "type": ["object", "null"] }, "warnings": { "type": "array" },
                    "blocks": { "type": "array", "items": { "$ref": "#/components/schemas/Block" } }, "error": { "type": "string" } } },
                "Result": { "type": "object", "description": "docseek.document/1 plus the job's fields.", "properties": {
                    "schema": { "const": "docseek.document/1" }, "generator": { "type": "string" }, "source": { "type": ["string", "null"] },
                    "pages": { "type": "array", "items": { "$ref": "#/components/schemas/Page" } },
                    "job": { "type": "object", "properties": { "id": { "type": "string" }, "state": { "$ref": "#/components/schemas/JobState" }, "page_count": { "type": ["integer", "null"] }, "media": { "type": "string" } } },
                    "failed_pages": { "type": "array", "items": { "type": "object", "properties": { "index": { "type": "integer" }, "number": { "type": "integer" }, "error": { "type": ["string", "null"] } } } } } },
                "Job": { "type": "object", "properties": { "id": { "type": "string" }, "state": { "$ref": "#/components/schemas/JobState" }, "queue_position": { "type": ["integer", "null"] }, "page_count": { "type": ["integer", "null"] }, "pages_done": { "type": "integer" }, "pages_failed": { "type": "integer" }, "pages": { "type": "array" }, "error": {} } }
            }
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/health": { "get": { "summary": "Liveness", "security": [], "responses": { "200": { "description": "Up." } } } },
            "/ready": { "get": { "summary": "Readiness", "security": [], "responses": { "200": { "description": "Ready." }, "503": { "description": "Starting, stopping or queue full." } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics (docseek_*)", "responses": { "200": { "description": "Text exposition format." } } } },
            "/openapi.json": { "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1." } } } },
            "/v1/info": { "get": { "summary": "Model, device, features, limits", "responses": { "200": { "description": "Server info." } } } },
            "/v1/ocr": { "post": ocr },
            "/v1/jobs": { "post": create },
            "/v1/jobs/{id}": {
                "get": { "summary": "Job status, per-page progress, queue position", "parameters": [job_path_param()], "responses": { "200": { "description": "Status.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Job" } } } }, "404": err("No such job.") } },
                "delete": { "summary": "Cancel a running job, or delete a finished one", "parameters": [job_path_param()], "responses": { "200": { "description": "Cancelled." }, "204": { "description": "Deleted." }, "404": err("No such job.") } }
            },
            "/v1/jobs/{id}/events": { "get": { "summary": "Server-sent events: state, pages, page (with its result), done", "parameters": [job_path_param()], "responses": { "200": { "description": "text/event-stream" }, "404": err("No such job.") } } },
            "/v1/jobs/{id}/result": { "get": { "summary": "The result", "parameters": [job_path_param(),
                { "name": "format", "in": "query", "schema": { "$ref": "#/components/schemas/Format" } },
                { "name": "download", "in": "query", "schema": { "type": "boolean" } },
                { "name": "hide_headers", "in": "query", "schema": { "type": "boolean" }, "description": "Hide running headers and footers." },
                { "name": "merge_tables", "in": "query", "schema": { "type": "boolean" }, "description": "Merge tables continued across pages." }],
                "responses": { "200": { "description": "The result." }, "404": err("No such job."), "409": err("Not finished, or cancelled.") } } },
            "/v1/jobs/{id}/pages/{index}/image": { "get": { "summary": "A rendered page image (PNG)", "parameters": [job_path_param(), { "name": "index", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 0 } }],
                "responses": { "200": { "description": "image/png" }, "404": err("No such job or page.") } } },
            "/v1/jobs/{id}/figures/{name}": { "get": { "summary": "A figure cropped from its page (PNG), as linked from the result", "parameters": [job_path_param(), { "name": "name", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^page-[0-9]+-fig-[0-9]+\\.png$" } }],
                "responses": { "200": { "description": "image/png" }, "404": err("No such job or figure."), "409": err("Not finished, or cancelled.") } } },
            "/v1/chat/completions": { "post": { "summary": "OpenAI-compatible chat completion (images as data: URLs; stream supported)", "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["messages"] } } } },
                "responses": { "200": { "description": "chat.completion, or text/event-stream of chat.completion.chunk when stream is true" }, "400": err("Bad request.") } } },
            "/v1/models": { "get": { "summary": "OpenAI-compatible model list", "responses": { "200": { "description": "The served model." } } } }
        }
    })
}
