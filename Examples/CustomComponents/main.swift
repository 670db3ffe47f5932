print("custom-components")
