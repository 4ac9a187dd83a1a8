// placeholder: replaced by the web client build
